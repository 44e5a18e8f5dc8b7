//! How values are read: durations and booleans as registry:2 writes them, the environment over the
//! file, errors naming key, value and what is allowed, warnings, and the printed configuration.

use super::*;

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
    let l = load_ok("redis:\n  addr: localhost:6379\n");
    assert_eq!(
        l.warnings[0].to_string(),
        "redis: berth keeps what registry:2 caches in redis in its metadata database; ignored"
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

/// Found by the `config` fuzz target (fuzz/corpus/config/long-escaped-key): a `log.fields` key of 250
/// characters, most of them control characters, printed (escaped, 6 characters each) as a key of 1,067
/// characters, which YAML does not read back (an implicit key has at most 1,024), so `berth config check`
/// printed a configuration that does not load. Keys are refused past 128 characters, from the file or a
/// variable; what is printed then always loads back.
#[test]
fn keys_longer_than_128_characters_are_refused() {
    let found = format!("tervts{}hold", "\u{18}".repeat(240));
    let yaml = format!("version: 0.1\nlog:\n  fields:\n    {found}: 6\n");
    assert!(
        error(&yaml).contains("longer than 128 characters"),
        "{}",
        error(&yaml)
    );
    let long = "k".repeat(129);
    let e = load(None, &env(&[(&format!("REGISTRY_LOG_FIELDS_{long}"), "v")]))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("longer than 128 characters"), "{e}");

    // 128 characters, each escaped in 6 when printed, still print as YAML that loads back the same.
    let yaml = format!("log:\n  fields:\n    \"{}\": v\n", "\\u0018".repeat(128));
    let printed = yaml::to_string(&load_ok(&yaml).config.to_yaml()).unwrap();
    let again = yaml::to_string(&load_ok(&printed).config.to_yaml()).unwrap();
    assert_eq!(printed, again);
}
