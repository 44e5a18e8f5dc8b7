//! Each section's keys and what they change: log, storage (with S3), http, health, proxy, database,
//! auth, and berth's gc and tags.

use super::*;

#[test]
fn the_log_section() {
    let l = load_ok(
        "log:\n  level: WARN\n  formatter: json\n  fields: {b: 2, a: x y}\n  accesslog: {disabled: true}\n  reportcaller: yes\n",
    );
    let log = &l.config.log;
    assert_eq!(log.level, log::LogLevel::Warn);
    assert_eq!(log.formatter, log::LogFormat::Json);
    assert_eq!(
        log.fields,
        [("b".into(), "2".into()), ("a".into(), "x y".into())]
    );
    assert!(!log.access_log && log.report_caller);

    // The deprecated top-level level applies only without log.level.
    let l = load_ok("loglevel: error\n");
    assert_eq!(l.config.log.level, log::LogLevel::Error);
    assert_eq!(warned(&l), [("loglevel", Deprecated)]);
    let l = load_ok("loglevel: error\nlog:\n  level: debug\n");
    assert_eq!(l.config.log.level, log::LogLevel::Debug);

    let l = load_ok("log:\n  formatter: logstash\n");
    assert_eq!(l.config.log.formatter, log::LogFormat::Json);
    assert_eq!(warned(&l), [("log.formatter", Adjusted)]);
}

#[test]
fn the_storage_section() {
    let l = load_ok(
        "storage:\n  filesystem:\n    rootdirectory: /srv/r\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: true\n      age: 1h30m\n      interval: 10m\n      dryrun: true\n  \
         redirect:\n    disable: true\n",
    );
    assert_eq!(warned(&l), []);
    let s = &l.config.storage;
    assert_eq!(
        s.driver,
        Driver::Filesystem {
            root: "/srv/r".into()
        }
    );
    assert!(s.delete_enabled && s.redirect_disabled && !s.read_only);
    assert_eq!(
        s.upload_purging,
        Some(registry::UploadPurging {
            age: Duration::from_secs(5400),
            interval: Duration::from_secs(600),
            dry_run: true,
        })
    );

    // Read-only mode turns purging off, as registry:2 does.
    let l = load_ok("storage:\n  maintenance:\n    readonly:\n      enabled: true\n");
    assert!(l.config.storage.read_only);
    assert_eq!(l.config.storage.upload_purging, None);
    let l = load_ok("storage:\n  maintenance:\n    uploadpurging: {enabled: false}\n");
    assert_eq!(l.config.storage.upload_purging, None);

    // `filesystem` without a root is registry:2's default root; the short form `storage: name` works.
    let l = load_ok("storage:\n  filesystem:\n");
    assert_eq!(
        l.config.storage.local_root(),
        Path::new("/var/lib/registry")
    );
    let l = load_ok("storage: filesystem\n");
    assert_eq!(
        l.config.storage.local_root(),
        Path::new("/var/lib/registry")
    );

    // Drivers berth does not have: the start is refused (pushes would land on a disk nobody
    // configured), naming the driver, in the long and the short form and from a variable.
    for (yaml, key) in [
        (
            "storage:\n  azure:\n    accountname: a\n    accountkey: k\n",
            "storage.azure",
        ),
        ("storage:\n  gcs:\n    bucket: b\n", "storage.gcs"),
        ("storage:\n  swift:\n    container: c\n", "storage.swift"),
        ("storage: inmemory\n", "storage.inmemory"),
    ] {
        let e = error(yaml);
        assert!(e.starts_with(key), "{yaml}: {e}");
        assert!(e.contains("no ") && e.contains("storage driver"), "{e}");
    }
}

#[test]
fn s3_is_parsed_for_the_s3_backend() {
    let l = load_ok(
        "storage:\n  s3:\n    accesskey: AK\n    secretkey: SK\n    region: us-east-1\n    \
         regionendpoint: http://127.0.0.1:3900\n    bucket: berth\n    rootdirectory: /reg\n    \
         forcepathstyle: true\n    secure: false\n    chunksize: 10485760\n    v4auth: true\n",
    );
    assert_eq!(warned(&l), []);
    let Driver::S3(s3) = &l.config.storage.driver else {
        panic!("{:?}", l.config.storage.driver)
    };
    assert_eq!(s3.bucket, "berth");
    assert_eq!(s3.secret_key.as_deref(), Some("SK"));
    assert_eq!(s3.region_endpoint.as_deref(), Some("http://127.0.0.1:3900"));
    assert!(s3.force_path_style && !s3.secure);
    assert_eq!(s3.chunk_size, 10 * 1024 * 1024);
    // Blobs go to S3; the SQLite metadata (without a database) stays on the local disk.
    assert_eq!(l.config.storage.local_root(), Path::new(DEFAULT_ROOT));
    assert_eq!(l.config.storage.driver_name(), "s3");

    assert_eq!(
        error("storage:\n  s3:\n    region: r\n"),
        "storage.s3.bucket: required with the s3 driver"
    );
    assert!(
        error("storage:\n  s3:\n    bucket: b\n    region: r\n    chunksize: 1024\n")
            .starts_with("storage.s3.chunksize: \"1024\": expected a whole number from 5242880")
    );
}

#[test]
fn the_http_section() {
    let l = load_ok(
        "http:\n  addr: '[::1]:5001'\n  net: tcp\n  host: https://reg.example.com/ignored/path\n  prefix: /mirror/\n  \
         secret: s3cr3t\n  relativeurls: true\n  draintimeout: 5s\n  \
         headers:\n    X-A: one\n    X-B: [two, three]\n  \
         debug:\n    addr: 127.0.0.1:5002\n  http2:\n    disabled: true\n",
    );
    assert_eq!(warned(&l), [("http.host", Adjusted)]);
    let h = &l.config.http;
    assert_eq!(h.addr, "[::1]:5001".parse().unwrap());
    assert_eq!(h.site.prefix.as_str(), "/mirror");
    assert_eq!(
        h.site.base_url.as_ref().unwrap().as_str(),
        "https://reg.example.com"
    );
    assert_eq!(h.secret.as_ref().map(Secret::expose), Some("s3cr3t"));
    assert!(h.relative_urls && h.http2_disabled);
    assert_eq!(h.drain_timeout, Some(Duration::from_secs(5)));
    assert_eq!(h.debug.addr, Some("127.0.0.1:5002".parse().unwrap()));
    assert_eq!(h.debug.prometheus, None);
    let headers: Vec<_> = h
        .site
        .headers
        .iter()
        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
        .collect();
    assert_eq!(headers, ["x-a: one", "x-b: two", "x-b: three"]);

    let l = load_ok(
        "http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n    clientcas: /ca.pem\n    minimumtls: tls1.3\n",
    );
    let tls = l.config.http.tls.unwrap();
    assert_eq!(tls.client_cas, [PathBuf::from("/ca.pem")]);
    assert_eq!(tls.minimum_version, berth_http::tls::TlsVersion::Tls13);
}

#[test]
fn the_health_proxy_and_database_sections() {
    let l = load_ok(
        "health:\n  storagedriver:\n    enabled: false\n    interval: 2s\n    threshold: 5\n",
    );
    assert_eq!(
        l.config.health,
        health::HealthConfig {
            enabled: false,
            interval: Duration::from_secs(2),
            threshold: 5
        }
    );
    // registry:2 reads an interval of 0 as its default.
    let l = load_ok("health:\n  storagedriver:\n    interval: 0\n");
    assert_eq!(l.config.health.interval, health::DEFAULT_INTERVAL);

    let l = load_ok("proxy:\n  remoteurl: http://upstream:5000/\n  ttl: 0\n");
    let p = l.config.proxy.unwrap();
    assert_eq!(
        (p.remote_url.as_deref(), p.ttl),
        (Some("http://upstream:5000"), None)
    );

    let l = load_ok(
        "database:\n  enabled: true\n  host: db.internal\n  port: 5433\n  user: registry\n  password: pw\n  \
         dbname: registry\n  sslmode: verify-full\n  sslrootcert: /ca.pem\n  connecttimeout: 5s\n  \
         pool:\n    maxopen: 20\n    maxidle: 5\n    maxlifetime: 5m\n    maxidletime: 1m\n",
    );
    // Wired in: PostgreSQL serves the metadata, so nothing is said about it.
    assert_eq!(warned(&l), []);
    let d = &l.config.database;
    assert!(d.enabled);
    assert_eq!((d.host.as_str(), d.port), ("db.internal", 5433));
    assert_eq!(d.user.as_deref(), Some("registry"));
    assert_eq!(d.password.as_ref().map(Secret::expose), Some("pw"));
    assert_eq!(d.sslmode, "verify-full");
    assert_eq!(d.sslrootcert, Some(PathBuf::from("/ca.pem")));
    assert_eq!(d.connect_timeout, Some(Duration::from_secs(5)));
    assert_eq!(
        d.pool,
        database::PoolConfig {
            max_open: Some(20),
            max_idle: Some(5),
            max_lifetime: Some(Duration::from_secs(300)),
            max_idle_time: Some(Duration::from_secs(60)),
        }
    );
    // Disabled: parsed, not announced.
    let l = load_ok("database:\n  enabled: false\n  host: h\n");
    assert_eq!(warned(&l), []);
}

/// An `auth` section that yields no authenticator berth has refuses the start: a typo or a provider
/// berth lacks must not leave the registry open. An empty `auth` is no authentication, as in registry:2.
#[test]
fn auth_without_a_usable_provider_refuses_the_start() {
    for yaml in [
        "auth:\n  htpaswd:\n    realm: r\n    path: /auth/htpasswd\n",
        "auth:\n  silly:\n    realm: r\n    service: s\n",
        "auth: silly\n",
        "auth:\n  ldap:\n    url: ldap://x\n",
    ] {
        let e = error(yaml);
        assert!(
            e.starts_with("auth: names no authentication"),
            "{yaml}: {e}"
        );
    }
    let misspelt = [
        ("REGISTRY_AUTH", "htpaswd"),
        ("REGISTRY_AUTH_HTPASWD_REALM", "Registry Realm"),
        ("REGISTRY_AUTH_HTPASWD_PATH", "/auth/htpasswd"),
    ];
    let e = load(Some(REGISTRY2_IMAGE), &env(&misspelt))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.starts_with("auth: names no authentication berth has (htpaswd)"),
        "{e}"
    );
    // Beside a provider berth has, an unknown key is a warning, as elsewhere.
    let l = load_ok(
        "auth:\n  htpasswd:\n    realm: r\n    path: /auth/htpasswd\n  silly:\n    realm: r\n",
    );
    assert!(l.config.auth.htpasswd.is_some());
    assert_eq!(
        l.config.auth,
        load_ok("auth:\n  htpasswd:\n    realm: r\n    path: /auth/htpasswd\n")
            .config
            .auth
    );
    assert!(load_ok("auth: {}\n").config.auth.htpasswd.is_none());
}

/// berth's `gc` section: on by default, every 24h with a 1h grace; each key changes what it says.
#[test]
fn gc_schedules_and_grace() {
    let defaults = load_ok("version: 0.1\n").config.gc;
    assert_eq!(defaults.interval, Some(Duration::from_secs(24 * 3600)));
    assert_eq!(defaults.grace, Duration::from_secs(3600));
    let off = load_ok("gc:\n  enabled: false\n").config.gc;
    assert_eq!(off.interval, None);
    let set = load_ok("gc:\n  interval: 6h\n  grace: 30m\n").config.gc;
    assert_eq!(
        (set.interval, set.grace),
        (
            Some(Duration::from_secs(6 * 3600)),
            Duration::from_secs(1800)
        )
    );
    let env = load_env(None, &[("REGISTRY_GC_GRACE", "2h")]).config.gc;
    assert_eq!(env.grace, Duration::from_secs(7200));
    assert!(!env.delete_untagged);
    assert!(
        load_ok("gc:\n  deleteuntagged: true\n")
            .config
            .gc
            .delete_untagged
    );
    let e = error("gc:\n  interval: 30s\n");
    assert!(e.starts_with("gc.interval: \"30s\""), "{e}");
    // Printed and read back, the same.
    let printed = yaml::to_string(&load_ok("gc:\n  interval: 6h\n").config.to_yaml()).unwrap();
    assert_eq!(load_ok(&printed).config.gc, set_interval_only());
}

fn set_interval_only() -> gc::GcConfig {
    gc::GcConfig {
        interval: Some(Duration::from_secs(6 * 3600)),
        grace: gc::DEFAULT_GRACE,
        delete_untagged: false,
    }
}

/// berth's `tags.immutable`: rules of repository and tag patterns; a bad pattern or an unknown key in
/// a rule stops the start, naming it.
#[test]
fn immutable_tags_are_read_strictly() {
    let l = load_ok(
        "tags:\n  immutable:\n    - repositories: [\"prod/**\"]\n      tags: [\"v*\"]\n    - repositories: [base]\n",
    );
    let rules = &l.config.immutable_tags;
    assert_eq!(rules.len(), 2);
    let (prod, app): (oci::RepoName, oci::RepoName) =
        ("prod/a".parse().unwrap(), "base".parse().unwrap());
    assert!(rules[0].repositories[0].matches(prod.as_str()) && rules[0].tags[0].matches("v1"));
    assert!(rules[1].repositories[0].matches(app.as_str()) && rules[1].tags.is_empty());
    assert!(load_ok("version: 0.1\n").config.immutable_tags.is_empty());
    for (yaml, key) in [
        (
            "tags:\n  immutable:\n    - repositories: [\"Prod/*\"]\n",
            "tags.immutable.0.repositories",
        ),
        (
            "tags:\n  immutable:\n    - repositories: [a]\n      tags: [\"v/1\"]\n",
            "tags.immutable.0.tags",
        ),
        (
            "tags:\n  immutable:\n    - repositories: [a]\n      tag: [v1]\n",
            "tags.immutable.0.tag",
        ),
        (
            "tags:\n  immutable:\n    - tags: [v1]\n",
            "tags.immutable.0.repositories",
        ),
    ] {
        let e = error(yaml);
        assert!(e.starts_with(key), "{yaml}: {e}");
    }
    // Printed and read back, the same.
    let printed = yaml::to_string(&l.config.to_yaml()).unwrap();
    assert_eq!(load_ok(&printed).config.immutable_tags, *rules);
}

#[test]
fn retention_rules_are_read_strictly() {
    let l = load_ok(
        "retention:\n  interval: 6h\n  rules:\n    - repositories: [\"ci/**\"]\n      keep:\n        latest: 10\n        tags: [\"v*\"]\n        pushedwithin: 30d\n        pulledwithin: 12h\n      untagged: 7d\n    - repositories: [\"**\"]\n      untagged: 90d\n",
    );
    let r = &l.config.retention;
    assert_eq!(r.interval, Some(Duration::from_secs(6 * 3600)));
    assert_eq!(r.rules.len(), 2);
    let day = |n: u64| Some(Duration::from_secs(n * 86_400));
    let ci = &r.rules[0];
    assert!(ci.repositories[0].matches("ci/a/b") && !ci.repositories[0].matches("prod/a"));
    assert_eq!(ci.keep.latest, Some(10));
    assert!(ci.keep.tags[0].matches("v1.2"));
    assert_eq!(ci.keep.pushed_within, day(30));
    assert_eq!(ci.keep.pulled_within, Some(Duration::from_secs(12 * 3600)));
    assert_eq!(ci.untagged, day(7));
    assert_eq!(r.rules[1].keep, registry::retention::Keep::default());
    assert_eq!(r.rules[1].untagged, day(90));
    // No rules: nothing scheduled, whatever `enabled` says.
    assert_eq!(load_ok("version: 0.1\n").config.retention.interval, None);
    let off = load_ok(
        "retention:\n  enabled: false\n  rules:\n    - repositories: [a]\n      untagged: 1d\n",
    );
    assert_eq!(off.config.retention.interval, None);
    for (yaml, key) in [
        (
            "retention:\n  rules:\n    - repositories: [a]\n",
            "retention.rules.0.keep",
        ),
        (
            "retention:\n  rules:\n    - repositories: [a]\n      keep: {}\n",
            "retention.rules.0.keep",
        ),
        (
            "retention:\n  rules:\n    - untagged: 1d\n",
            "retention.rules.0.repositories",
        ),
        (
            "retention:\n  rules:\n    - repositories: [a]\n      untaged: 1d\n",
            "retention.rules.0.untaged",
        ),
        (
            "retention:\n  rules:\n    - repositories: [a]\n      keep:\n        lastest: 3\n",
            "retention.rules.0.keep.lastest",
        ),
        (
            "retention:\n  rules:\n    - repositories: [a]\n      untagged: 7 days\n",
            "retention.rules.0.untagged",
        ),
        (
            "retention:\n  rules:\n    - repositories: [a]\n      keep:\n        latest: -1\n",
            "retention.rules.0.keep.latest",
        ),
    ] {
        let e = error(yaml);
        assert!(e.starts_with(key), "{yaml}: {e}");
    }
    // Printed and read back, the same.
    let printed = yaml::to_string(&l.config.to_yaml()).unwrap();
    assert_eq!(load_ok(&printed).config.retention, *r);
}

#[test]
fn quotas_are_read_strictly() {
    let l = load_ok(
        "quotas:\n  limits:\n    - repositories: [\"team-a/**\", \"shared/a-*\"]\n      size: 50G\n    - repositories: [b]\n      size: \"1024\"\n",
    );
    let q = &l.config.quotas;
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].bytes, 50 << 30);
    assert!(q[0].repositories[1].matches("shared/a-x"));
    assert_eq!(q[1].bytes, 1024);
    assert!(load_ok("version: 0.1\n").config.quotas.is_empty());
    for (yaml, key) in [
        (
            "quotas:\n  limits:\n    - repositories: [a]\n",
            "quotas.limits.0.size",
        ),
        (
            "quotas:\n  limits:\n    - size: 1G\n",
            "quotas.limits.0.repositories",
        ),
        (
            "quotas:\n  limits:\n    - repositories: [a]\n      size: lots\n",
            "quotas.limits.0.size",
        ),
        (
            "quotas:\n  limits:\n    - repositories: [a]\n      size: 1G\n      sise: 2G\n",
            "quotas.limits.0.sise",
        ),
        ("quotas:\n  limits: 5\n", "quotas.limits"),
    ] {
        let e = error(yaml);
        assert!(e.starts_with(key), "{yaml}: {e}");
    }
    let printed = yaml::to_string(&l.config.to_yaml()).unwrap();
    assert_eq!(load_ok(&printed).config.quotas, *q);
}

#[test]
fn scrub_rate_has_a_default_and_zero_lifts_it() {
    assert_eq!(load_ok("version: 0.1\n").config.scrub.rate, Some(100 << 20));
    assert_eq!(
        load_ok("scrub:\n  rate: 10M\n").config.scrub.rate,
        Some(10 << 20)
    );
    assert_eq!(load_ok("scrub:\n  rate: 0\n").config.scrub.rate, None);
    let e = error("scrub:\n  rate: fast\n");
    assert!(e.starts_with("scrub.rate"), "{e}");
    let printed = yaml::to_string(&load_ok("scrub:\n  rate: 0\n").config.to_yaml()).unwrap();
    assert_eq!(load_ok(&printed).config.scrub.rate, None);
}
