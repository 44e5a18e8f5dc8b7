//! Tests of the whole configuration: registry:2's sample files load unchanged, every section's keys and
//! defaults, durations and booleans as registry:2 writes them, environment overrides, errors that name
//! key, value and what is allowed, warnings for unknown and unimplemented keys, and the printed
//! configuration.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::storage::{DEFAULT_ROOT, Driver};
use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_ok(yaml: &str) -> Loaded {
    load(Some(yaml), &env(&[])).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn load_env(yaml: Option<&str>, vars: &[(&str, &str)]) -> Loaded {
    load(yaml, &env(vars)).unwrap_or_else(|e| panic!("{e}"))
}

fn error(yaml: &str) -> String {
    match load(Some(yaml), &env(&[])) {
        Ok(_) => panic!("loaded, but should not have:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

/// The warnings as `(key, kind)`, in order.
fn warned(loaded: &Loaded) -> Vec<(&str, WarningKind)> {
    loaded
        .warnings
        .iter()
        .map(|w| (w.key.as_str(), w.kind))
        .collect()
}

const REGISTRY2_IMAGE: &str = include_str!("../../tests/configs/registry2-image.yml");
const LIBRARY_IMAGE: &str = include_str!("../../tests/configs/registry-library-image.yml");
const CONFIG_EXAMPLE: &str = include_str!("../../tests/configs/config-example.yml");
const CONFIG_DEV: &str = include_str!("../../tests/configs/config-dev.yml");
const MIRROR: &str = include_str!("../../tests/configs/mirror.yml");
const TLS_HTPASSWD: &str = include_str!("../../tests/configs/tls-htpasswd.yml");
const REFERENCE: &str = include_str!("../../tests/configs/reference.yml");

use WarningKind::{Adjusted, Deprecated, Ignored, Unknown};

#[test]
fn the_registry2_image_config_loads_without_a_word() {
    let l = load_ok(REGISTRY2_IMAGE);
    assert_eq!(warned(&l), []);
    let c = &l.config;
    assert_eq!(c.http.addr, "0.0.0.0:5000".parse().unwrap());
    assert_eq!(c.storage.local_root(), Path::new("/var/lib/registry"));
    assert_eq!(c.log.fields, [("service".into(), "registry".into())]);
    let headers: Vec<_> = c
        .http
        .site
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(headers, [("x-content-type-options", "nosniff")]);
    assert_eq!(
        c.health,
        health::HealthConfig {
            enabled: true,
            interval: Duration::from_secs(10),
            threshold: 3
        }
    );
    assert_eq!(c.storage.blob_descriptor_cache.as_deref(), Some("inmemory"));
    assert!(!c.storage.delete_enabled);
}

#[test]
fn the_other_sample_configs_load_unchanged() {
    let l = load_ok(LIBRARY_IMAGE);
    assert_eq!(warned(&l), [("storage.tag.concurrencylimit", Ignored)]);
    assert_eq!(l.config.log.level, log::LogLevel::Debug);
    assert_eq!(
        l.config.http.debug.addr,
        Some("0.0.0.0:5001".parse().unwrap())
    );
    assert!(l.config.storage.delete_enabled);

    let l = load_ok(CONFIG_EXAMPLE);
    assert_eq!(warned(&l), [("storage.tag.concurrencylimit", Ignored)]);
    let h = l.config.auth.htpasswd.unwrap();
    assert_eq!(
        (h.realm.as_str(), h.path.as_path()),
        ("basic-realm", Path::new("/etc/registry"))
    );

    let l = load_ok(CONFIG_DEV);
    assert_eq!(warned(&l), [("storage.tag.concurrencylimit", Ignored)]);
    assert_eq!(l.config.storage.upload_purging, None);
    assert_eq!(l.config.http.debug.prometheus.as_deref(), Some("/metrics"));

    let l = load_ok(MIRROR);
    assert_eq!(warned(&l), []);
    let p = l.config.proxy.unwrap();
    assert_eq!(
        p.remote_url.as_deref(),
        Some("https://registry-1.docker.io")
    );
    assert_eq!(p.username.as_deref(), Some("mirror-user"));
    assert_eq!(p.password.as_ref().map(Secret::expose), Some("0123secret"));
    assert_eq!(p.ttl, Some(Duration::from_secs(168 * 3600)));

    let l = load_ok(TLS_HTPASSWD);
    assert_eq!(warned(&l), []);
    let c = &l.config;
    let tls = c.http.tls.as_ref().unwrap();
    assert_eq!(tls.certificate, PathBuf::from("/certs/domain.crt"));
    assert_eq!(tls.key, PathBuf::from("/certs/domain.key"));
    assert_eq!(c.log.formatter, log::LogFormat::Json);
    assert_eq!(
        c.http.site.base_url.as_ref().map(|u| u.as_str()),
        Some("https://registry.example.com")
    );
    assert_eq!(c.http.site.headers.iter().count(), 2);
    assert!(c.auth.htpasswd.is_some());
}

/// registry:2's whole reference: every key is known (read, or reported as ignored or not implemented
/// yet), none is "unknown".
#[test]
fn every_key_of_registry2s_reference_is_known() {
    let l = load_ok(REFERENCE);
    assert!(
        !l.warnings.iter().any(|w| w.kind == Unknown),
        "{:#?}",
        l.warnings
    );
    assert_eq!(
        warned(&l),
        [
            ("log.hooks", Ignored),
            ("loglevel", Deprecated),
            ("storage.filesystem.maxthreads", Ignored),
            ("storage.cache.blobdescriptorsize", Ignored),
            ("storage.cache.blobdescriptor", Ignored),
            ("http.tls.ciphersuites", Ignored),
            ("http.tls.letsencrypt", Ignored),
            ("auth.token.autoredirect", Ignored),
            ("health.file", Ignored),
            ("health.http", Ignored),
            ("health.tcp", Ignored),
            ("notifications", Ignored),
            ("redis", Ignored),
            ("reporting", Ignored),
            ("middleware", Ignored),
            ("compatibility", Ignored),
            ("validation", Ignored),
            ("policy", Ignored),
            ("catalog", Ignored),
        ]
    );
    let c = &l.config;
    assert!(!c.log.access_log);
    assert_eq!(c.http.site.prefix.as_str(), "/my/nested/registry");
    assert_eq!(c.http.drain_timeout, Some(Duration::from_secs(60)));
    assert_eq!(c.http.tls.as_ref().unwrap().client_cas.len(), 2);
    assert_eq!(
        c.auth.token.as_ref().unwrap().issuer,
        "registry-token-issuer"
    );
}

#[test]
fn defaults_without_a_file_or_with_an_empty_one() {
    for file in [None, Some(""), Some("# nothing\n"), Some("version: 0.1\n")] {
        let l = load_env(file, &[]);
        assert_eq!(warned(&l), [], "{file:?}");
        let c = &l.config;
        assert_eq!(c.http.addr.to_string(), "127.0.0.1:5000");
        assert_eq!(c.storage.local_root(), Path::new(DEFAULT_ROOT));
        assert!(!c.storage.delete_enabled && !c.storage.read_only);
        assert_eq!(
            c.storage.upload_purging,
            Some(registry::UploadPurging::default())
        );
        assert_eq!(c.log, log::LogConfig::default());
        assert_eq!(c.health, health::HealthConfig::default());
        assert!(c.proxy.is_none());
        assert!(!c.database.enabled);
        assert!(c.http.site.prefix.is_root() && c.http.site.base_url.is_none());
        assert!(c.http.debug.addr.is_none() && c.http.tls.is_none());
        assert_eq!(c.auth, ::auth::Settings::default());
    }
}

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

#[test]
fn durations_and_booleans_as_registry2_writes_them() {
    for (text, secs) in [
        ("168h", 604_800),
        ("10s", 10),
        ("5m", 300),
        ("1h30m", 5400),
        ("1.5h", 5400),
    ] {
        let l = load_ok(&format!(
            "storage:\n  maintenance:\n    uploadpurging:\n      age: {text}\n"
        ));
        assert_eq!(
            l.config.storage.upload_purging.map(|p| p.age),
            Some(Duration::from_secs(secs)),
            "{text}"
        );
    }
    for (text, want) in [
        ("true", true),
        ("yes", true),
        ("on", true),
        ("'true'", true),
        ("False", false),
        ("off", false),
    ] {
        let l = load_ok(&format!("storage:\n  delete:\n    enabled: {text}\n"));
        assert_eq!(l.config.storage.delete_enabled, want, "{text}");
    }
}

#[test]
fn the_environment_wins_over_the_file() {
    let l = load_env(
        Some(REGISTRY2_IMAGE),
        &[
            ("REGISTRY_HTTP_ADDR", "127.0.0.1:0"),
            ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/srv/berth"),
            ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
            ("REGISTRY_LOG_LEVEL", "debug"),
            ("REGISTRY_LOG_FORMATTER", "json"),
            ("REGISTRY_LOG_FIELDS_ENVIRONMENT", "prod"),
            ("REGISTRY_HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS", "[sniff]"),
            ("REGISTRY_HEALTH_STORAGEDRIVER_THRESHOLD", "1"),
            ("REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED", "true"),
            ("UNRELATED", "x"),
        ],
    );
    assert_eq!(warned(&l), []);
    let c = &l.config;
    assert_eq!(c.http.addr.to_string(), "127.0.0.1:0");
    assert_eq!(c.storage.local_root(), Path::new("/srv/berth"));
    assert!(c.storage.delete_enabled && c.storage.read_only);
    assert_eq!(c.log.level, log::LogLevel::Debug);
    assert_eq!(c.log.formatter, log::LogFormat::Json);
    assert_eq!(
        c.log.fields,
        [
            ("service".into(), "registry".into()),
            ("environment".into(), "prod".into())
        ]
    );
    let headers: Vec<_> = c
        .http
        .site
        .headers
        .iter()
        .map(|(_, v)| v.to_str().unwrap())
        .collect();
    assert_eq!(headers, ["sniff"]);
    assert_eq!(c.health.threshold, 1);

    // An empty variable counts as unset.
    let l = load_env(Some(REGISTRY2_IMAGE), &[("REGISTRY_HTTP_ADDR", "")]);
    assert_eq!(l.config.http.addr.to_string(), "0.0.0.0:5000");
}

/// Docker's documented recipe for basic authentication and TLS, all in variables, `REGISTRY_AUTH=htpasswd`
/// included.
#[test]
fn docker_docs_recipe_in_variables() {
    let l = load_env(
        Some(REGISTRY2_IMAGE),
        &[
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", "Registry Realm"),
            ("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd"),
            ("REGISTRY_HTTP_TLS_CERTIFICATE", "/certs/domain.crt"),
            ("REGISTRY_HTTP_TLS_KEY", "/certs/domain.key"),
        ],
    );
    let h = l.config.auth.htpasswd.as_ref().unwrap();
    assert_eq!(h.realm, "Registry Realm");
    assert_eq!(h.path, PathBuf::from("/auth/htpasswd"));
    assert_eq!(
        l.config.http.tls.as_ref().map(|t| t.key.clone()),
        Some(PathBuf::from("/certs/domain.key"))
    );
    assert_eq!(warned(&l), []);
}

#[test]
fn errors_name_key_value_and_what_is_allowed() {
    let cases: &[(&str, &str)] = &[
        (
            "http:\n  addr: localhost:99999\n",
            "http.addr: \"localhost:99999\": not a valid port (0-65535)",
        ),
        (
            "http:\n  addr: example.com:80\n",
            "http.addr: \"example.com:80\": \"example.com\" is not an IP address (use an IP, localhost, or :port)",
        ),
        (
            "storage:\n  delete:\n    enabled: maybe\n",
            "storage.delete.enabled: \"maybe\": expected true or false",
        ),
        (
            "storage:\n  maintenance:\n    uploadpurging:\n      age: 10\n",
            "storage.maintenance.uploadpurging.age: \"10\": expected a duration such as 10s, 5m, 168h or 1h30m (units ns, us, ms, s, m, h); a number needs a unit",
        ),
        (
            "storage:\n  maintenance:\n    uploadpurging:\n      interval: 0s\n",
            "storage.maintenance.uploadpurging.interval: \"0s\": must be longer than 0s",
        ),
        (
            "log:\n  level: verbose\n",
            "log.level: \"verbose\": expected one of error, warn, info, debug, trace",
        ),
        (
            "log:\n  formatter: xml\n",
            "log.formatter: \"xml\": expected one of text, json, logstash",
        ),
        (
            "http:\n  prefix: registry/\n",
            "http.prefix: \"registry/\": must start with /, as in /registry/",
        ),
        (
            "http:\n  host: registry.example.com\n",
            "http.host: \"registry.example.com\": expected http://host[:port] or https://host[:port]",
        ),
        (
            "http:\n  headers:\n    Bad Header: [x]\n",
            "http.headers.Bad Header: \"x\": \"Bad Header\" is not a valid header name",
        ),
        (
            "http:\n  net: unix\n",
            "http.net: \"unix\": berth listens on TCP only (tcp, tcp4, tcp6)",
        ),
        (
            "http:\n  tls:\n    certificate: /c.pem\n",
            "http.tls.key: required with http.tls (certificate and key go together)",
        ),
        (
            "http:\n  tls:\n    certificate: /c\n    key: /k\n    minimumtls: tls1.0\n",
            "http.tls.minimumtls: \"tls1.0\": tls1.0 is not supported: berth speaks TLS 1.2 and 1.3 only (use tls1.2 or tls1.3)",
        ),
        (
            "health:\n  storagedriver:\n    threshold: -1\n",
            "health.storagedriver.threshold: \"-1\": expected a whole number from 0 to 4294967295",
        ),
        (
            "proxy:\n  remoteurl: registry-1.docker.io\n",
            "proxy.remoteurl: \"registry-1.docker.io\": expected an http:// or https:// URL",
        ),
        (
            "proxy:\n  username: u\n",
            "proxy.remoteurl: required with proxy (or proxy.upstreams)",
        ),
        (
            "database:\n  port: 70000\n",
            "database.port: \"70000\": expected a whole number from 1 to 65535",
        ),
        (
            "database:\n  sslmode: maybe\n",
            "database.sslmode: \"maybe\": expected one of disable, allow, prefer, require, verify-ca, verify-full",
        ),
        (
            "database:\n  enabled: true\n  user: u\n",
            "database.dbname: required when database.enabled is true",
        ),
        (
            "storage:\n  filesystem:\n    rootdirectory: /a\n  s3:\n    bucket: b\n",
            "storage: configure exactly one storage driver, as registry:2 requires; found filesystem, s3",
        ),
        (
            "storage:\n  filesystem:\n    rootdirectory: ''\n",
            "storage.filesystem.rootdirectory: \"\": must not be empty",
        ),
        (
            "storage:\n  filesystem:\n    rootdirectory: {a: 1}\n",
            "storage.filesystem.rootdirectory: expected a single value, found a mapping",
        ),
        (
            "http: [1, 2]\n",
            "http: expected a mapping of settings, found a list",
        ),
        (
            "version: 0.2\n",
            "version: \"0.2\": unsupported configuration version; berth reads version 0.1",
        ),
        (
            "- a list\n",
            "the configuration must be a YAML mapping of keys to settings, not a list",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(&error(yaml), want, "{yaml}");
    }
    assert!(error("http: [unclosed\n").starts_with("the configuration is not valid YAML"));
    assert!(error("a: 1\na: 2\n").starts_with("the configuration is not valid YAML"));
}

#[test]
fn errors_from_the_environment_name_the_variable() {
    let e = load(
        None,
        &env(&[("REGISTRY_STORAGE_DELETE_ENABLED", "sometimes")]),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "REGISTRY_STORAGE_DELETE_ENABLED (storage.delete.enabled): \"sometimes\": expected true or false"
    );
    let e = load(
        Some(REGISTRY2_IMAGE),
        &env(&[("REGISTRY_HTTP", "{addr: bad}")]),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "REGISTRY_HTTP (http.addr): \"bad\": expected host:port, or :port for every interface"
    );
}

#[test]
fn unknown_keys_are_reported_by_name_at_any_depth() {
    let l = load_ok(
        "version: 0.1\nfrobnicate: 1\nlog:\n  colour: red\nstorage:\n  delete:\n    enabled: true\n    soon: yes\n  \
         maintenance:\n    uploadpurging:\n      agee: 1h\nhttp:\n  tls: {}\n  debug:\n    adr: :5001\n",
    );
    assert_eq!(
        warned(&l),
        [
            ("log.colour", Unknown),
            ("storage.delete.soon", Unknown),
            ("storage.maintenance.uploadpurging.agee", Unknown),
            ("http.debug.adr", Unknown),
            ("frobnicate", Unknown),
        ]
    );
    // From the environment too, named by the variable.
    let l = load_env(
        None,
        &[
            ("REGISTRY_HTTP_ADRESS", ":1"),
            ("REGISTRY_PORT", "tcp://10.0.0.1:5000"),
        ],
    );
    let keys: Vec<String> = l.warnings.iter().map(|w| w.key.clone()).collect();
    assert_eq!(
        keys,
        ["REGISTRY_HTTP_ADRESS (http.adress)", "REGISTRY_PORT (port)"]
    );
    assert!(l.warnings.iter().all(|w| w.kind == Unknown));
}

#[test]
fn warnings_say_what_happens_instead() {
    let l = load_ok("notifications:\n  endpoints: []\n");
    assert_eq!(
        l.warnings[0].to_string(),
        "notifications: registry:2's webhook notifications are not supported by berth; ignored"
    );
}

#[test]
fn the_printed_configuration_masks_secrets_and_reads_back_the_same() {
    let secrets = ["s3cr3t-http", "s3cr3t-proxy", "s3cr3t-db"];
    let text = format!(
        "{TLS_HTPASSWD}\nproxy:\n  remoteurl: https://up\n  password: {}\ndatabase:\n  password: {}\n",
        secrets[1], secrets[2]
    )
    .replace("a-long-random-http-secret", secrets[0]);
    let printed = yaml::to_string(&load_ok(&text).config.to_yaml()).unwrap();
    for s in secrets {
        assert!(!printed.contains(s), "{s} printed:\n{printed}");
    }
    assert_eq!(printed.matches(Secret::MASK).count(), 3, "{printed}");

    let s3 = "storage:\n  s3:\n    bucket: b\n    region: r\n    secretkey: s3cr3t-s3\n";
    let printed = yaml::to_string(&load_ok(s3).config.to_yaml()).unwrap();
    assert!(!printed.contains("s3cr3t-s3") && printed.contains(Secret::MASK));

    // What is printed is a configuration that means the same.
    for sample in [
        REGISTRY2_IMAGE,
        LIBRARY_IMAGE,
        CONFIG_EXAMPLE,
        MIRROR,
        TLS_HTPASSWD,
        REFERENCE,
    ] {
        let once = load_ok(sample).config.to_yaml();
        let again = load_ok(&yaml::to_string(&once).unwrap()).config.to_yaml();
        assert_eq!(once, again, "{sample}");
    }
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
