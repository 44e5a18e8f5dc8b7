//! registry:3's sample configurations load unchanged (its reference, `config-cache.yml`, the
//! documentation's development example), and what berth makes of the keys registry:3 added.

use super::*;

/// The warnings, but for `notifications` (its own work: implemented apart from these keys).
fn warned_but_notifications(l: &Loaded) -> Vec<(&str, WarningKind)> {
    let mut w = warned(l);
    w.retain(|(key, _)| !key.starts_with("notifications"));
    w
}

#[test]
fn the_registry3_dev_example_loads_without_a_word() {
    let l = load_ok(REGISTRY3_DEV);
    assert_eq!(warned(&l), []);
    assert_eq!(l.config.http.addr.to_string(), "127.0.0.1:5000");
    assert_eq!(
        l.config.http.debug.addr,
        Some("127.0.0.1:5001".parse().unwrap())
    );
}

#[test]
fn the_registry3_cache_example_loads() {
    let l = load_ok(REGISTRY3_CACHE);
    assert_eq!(
        warned_but_notifications(&l),
        [
            ("storage.tag.concurrencylimit", Ignored),
            ("storage.cache.blobdescriptor", Ignored),
            ("redis", Ignored),
        ]
    );
    let p = l.config.proxy.as_ref().unwrap();
    assert_eq!(
        p.remote_url.as_deref(),
        Some("https://registry-1.docker.io")
    );
}

/// registry:3's whole reference: every key is known (read, or reported as ignored), none is "unknown".
#[test]
fn every_key_of_registry3s_reference_is_known() {
    let l = load_ok(REGISTRY3_REFERENCE);
    assert_eq!(
        warned_but_notifications(&l),
        [
            ("log.hooks", Ignored),
            ("loglevel", Deprecated),
            ("storage.filesystem.maxthreads", Ignored),
            ("storage.cache.blobdescriptorsize", Ignored),
            ("storage.tag.concurrencylimit", Ignored),
            ("storage.cache.blobdescriptor", Ignored),
            ("http.tls.letsencrypt", Ignored),
            ("auth.token.autoredirect", Ignored),
            ("health.file", Ignored),
            ("health.http", Ignored),
            ("health.tcp", Ignored),
            ("proxy.username", Adjusted),
            ("proxy.password", Adjusted),
            ("validation.manifests.urls", Ignored),
            ("redis", Ignored),
            ("middleware", Ignored),
            ("catalog", Ignored),
        ]
    );
    let c = &l.config;
    let tls = c.http.tls.as_ref().unwrap();
    assert_eq!(tls.client_cas.len(), 2);
    assert_eq!(
        tls.client_auth,
        berth_http::tls::ClientAuth::RequireAndVerifyClientCert
    );
    assert!(!c.http.h2c && !c.http.http2_disabled);
    assert_eq!(c.max_tags, 1000);
    // `platforms: List`, compared without case as registry:3 does.
    assert_eq!(
        c.index_children,
        registry::IndexChildren::Platforms(vec![registry::RequiredPlatform {
            os: "linux".into(),
            architecture: "amd64".into(),
        }])
    );
    let token = c.auth.token.as_ref().unwrap();
    assert_eq!(token.signing_algorithms, ["EdDSA", "HS256"]);
    assert_eq!(token.jwks.as_deref(), Some(Path::new("/path/to/jwks")));
    let p = c.proxy.as_ref().unwrap();
    assert_eq!(
        p.exec,
        Some(upstream::CredentialHelper {
            command: "docker-credential-helper".into(),
            lifetime: Some(Duration::from_secs(3600)),
        })
    );
    assert_eq!(p.ttl, Some(Duration::from_secs(168 * 3600)));
}

#[test]
fn tls_clientauth_modes() {
    use berth_http::tls::ClientAuth;
    let tls = |extra: &str| {
        let yaml = format!(
            "http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n    clientcas: [/ca.pem]\n{extra}"
        );
        load_ok(&yaml).config.http.tls.unwrap().client_auth
    };
    assert_eq!(tls(""), ClientAuth::RequireAndVerifyClientCert);
    for (text, mode) in [
        ("request-client-cert", ClientAuth::RequestClientCert),
        ("require-any-client-cert", ClientAuth::RequireAnyClientCert),
        (
            "verify-client-cert-if-given",
            ClientAuth::VerifyClientCertIfGiven,
        ),
        (
            "require-and-verify-client-cert",
            ClientAuth::RequireAndVerifyClientCert,
        ),
    ] {
        assert_eq!(tls(&format!("    clientauth: {text}\n")), mode, "{text}");
    }
    let l = load_env(
        Some("http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n    clientcas: [/ca.pem]\n"),
        &[(
            "REGISTRY_HTTP_TLS_CLIENTAUTH",
            "verify-client-cert-if-given",
        )],
    );
    assert_eq!(
        l.config.http.tls.unwrap().client_auth,
        ClientAuth::VerifyClientCertIfGiven
    );
    let err = error("http:\n  tls:\n    certificate: /c\n    key: /k\n    clientauth: verify\n");
    assert!(err.starts_with("http.tls.clientauth"), "{err}");
    assert!(err.contains("require-any-client-cert"), "{err}");
    // Without clientcas the mode means nothing, in registry:3 too: said so.
    let l = load_ok(
        "http:\n  tls:\n    certificate: /c\n    key: /k\n    clientauth: require-any-client-cert\n",
    );
    assert_eq!(warned(&l), [("http.tls.clientauth", Ignored)]);
}

#[test]
fn h2c_governs_the_plain_listener_and_http2_the_tls_one() {
    let http = |yaml: &str| load_ok(yaml).config.http;
    // berth's default: h2c by prior knowledge, HTTP/2 through ALPN.
    assert!(http("").serves_http2());
    assert!(!http("http:\n  h2c:\n    enabled: false\n").serves_http2());
    assert!(
        http("http:\n  h2c:\n    enabled: true\n  http2:\n    disabled: true\n").serves_http2()
    );
    // http2.disabled alone still turns h2c off, as it did before h2c.enabled existed.
    assert!(!http("http:\n  http2:\n    disabled: true\n").serves_http2());
    let tls = "http:\n  tls:\n    certificate: /c\n    key: /k\n";
    assert!(http(&format!("{tls}  h2c:\n    enabled: false\n")).serves_http2());
    assert!(
        !http(&format!(
            "{tls}  http2:\n    disabled: true\n  h2c:\n    enabled: true\n"
        ))
        .serves_http2()
    );
    let l = load_env(None, &[("REGISTRY_HTTP_H2C_ENABLED", "false")]);
    assert!(!l.config.http.serves_http2());
    assert_eq!(warned(&l), []);
}

#[test]
fn tags_maxtags() {
    assert_eq!(load_ok("").config.max_tags, registry::MAX_PAGE);
    assert_eq!(load_ok("tags:\n  maxtags: 100\n").config.max_tags, 100);
    // registry:3 reads 0 as its default.
    assert_eq!(
        load_ok("tags:\n  maxtags: 0\n").config.max_tags,
        registry::MAX_PAGE
    );
    let l = load_ok("tags:\n  maxtags: 50000\n");
    assert_eq!(l.config.max_tags, registry::MAX_TAGS_PAGE);
    assert_eq!(warned(&l), [("tags.maxtags", Adjusted)]);
    let l = load_env(None, &[("REGISTRY_TAGS_MAXTAGS", "7")]);
    assert_eq!(l.config.max_tags, 7);
    let err = error("tags:\n  maxtags: -1\n");
    assert!(err.starts_with("tags.maxtags"), "{err}");
    // It reaches the registry.
    assert_eq!(crate::serve::registry_settings(&l.config).max_tags, 7);
}

#[test]
fn proxy_exec() {
    let p = load_ok("proxy:\n  remoteurl: https://r.example\n  exec:\n    command: /bin/helper\n")
        .config
        .proxy
        .unwrap();
    assert_eq!(
        p.exec,
        Some(upstream::CredentialHelper {
            command: "/bin/helper".into(),
            lifetime: None,
        })
    );
    let l = load_env(
        Some("proxy:\n  remoteurl: https://r.example\n"),
        &[
            ("REGISTRY_PROXY_EXEC_COMMAND", "docker-credential-ecr-login"),
            ("REGISTRY_PROXY_EXEC_LIFETIME", "0s"),
        ],
    );
    let exec = l.config.proxy.as_ref().unwrap().exec.clone().unwrap();
    assert_eq!(exec.command, "docker-credential-ecr-login");
    assert_eq!(exec.lifetime, Some(Duration::ZERO));
    assert_eq!(warned(&l), []);
    // Beside exec, username and password are not used: said so.
    let l = load_env(
        Some("proxy:\n  remoteurl: https://r.example\n  username: u\n  exec:\n    command: h\n"),
        &[("REGISTRY_PROXY_PASSWORD", "p")],
    );
    assert_eq!(
        warned(&l),
        [
            ("proxy.username", Adjusted),
            ("REGISTRY_PROXY_PASSWORD (proxy.password)", Adjusted)
        ]
    );
    // berth's upstreams take one each.
    let p = load_ok(
        "proxy:\n  upstreams:\n    - prefix: ecr\n      remoteurl: https://ecr.example\n      exec:\n        command: h\n        lifetime: 1h\n",
    )
    .config
    .proxy
    .unwrap();
    assert_eq!(p.upstreams[0].exec.as_ref().unwrap().command, "h");
    for (yaml, key) in [
        (
            "proxy:\n  remoteurl: https://r\n  exec:\n    lifetime: 1h\n",
            "proxy.exec.command",
        ),
        (
            "proxy:\n  remoteurl: https://r\n  exec:\n    command: h\n    lifetime: soon\n",
            "proxy.exec.lifetime",
        ),
        (
            "proxy:\n  remoteurl: https://r\n  exec:\n    command: h\n    args: [x]\n",
            "proxy.exec.args",
        ),
    ] {
        let err = error(yaml);
        assert!(err.starts_with(key), "{yaml}: {err}");
    }
    // The effective configuration prints it and loads back.
    let l = load_ok(
        "proxy:\n  remoteurl: https://r.example\n  exec:\n    command: h\n    lifetime: 90m\n",
    );
    let printed = yaml::to_string(&l.config.to_yaml()).unwrap();
    let again = load_ok(&printed).config.proxy.unwrap();
    assert_eq!(again.exec, l.config.proxy.unwrap().exec);
}

#[test]
fn token_signingalgorithms() {
    let token =
        "auth:\n  token:\n    realm: r\n    service: s\n    issuer: i\n    rootcertbundle: /b\n";
    let algs = |extra: &str| {
        load_ok(&format!("{token}{extra}"))
            .config
            .auth
            .token
            .unwrap()
            .signing_algorithms
    };
    assert!(algs("").is_empty(), "unset: the auth crate's default");
    assert_eq!(
        algs("    signingalgorithms: [EdDSA, RS256]\n"),
        ["EdDSA", "RS256"]
    );
    // registry:3's documented example: ES512 is left out, said so.
    let l = load_ok(&format!(
        "{token}    signingalgorithms:\n      - EdDSA\n      - HS256\n      - ES512\n"
    ));
    assert_eq!(
        l.config.auth.token.as_ref().unwrap().signing_algorithms,
        ["EdDSA", "HS256"]
    );
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert_eq!(l.warnings[0].kind, Adjusted);
    assert!(l.warnings[0].message.contains("ES512"));
    let err = error(&format!("{token}    signingalgorithms: [RS257]\n"));
    assert!(err.contains("signingalgorithms"), "{err}");
    let err = error(&format!("{token}    signingalgorithms: [ES512]\n"));
    assert!(err.contains("no algorithm berth can verify"), "{err}");
    // In a variable, as a YAML list.
    let l = load_env(
        Some(token),
        &[("REGISTRY_AUTH_TOKEN_SIGNINGALGORITHMS", "[EdDSA]")],
    );
    assert_eq!(l.config.auth.token.unwrap().signing_algorithms, ["EdDSA"]);
}

#[test]
fn validation_manifests_indexes() {
    use registry::{IndexChildren, RequiredPlatform};
    let rule = |yaml: &str| load_ok(yaml).config.index_children;
    assert_eq!(rule(""), IndexChildren::All);
    let indexes = "validation:\n  manifests:\n    indexes:\n";
    assert_eq!(
        rule(&format!("{indexes}      platforms: none\n")),
        IndexChildren::None
    );
    assert_eq!(
        rule(&format!("{indexes}      platforms: all\n")),
        IndexChildren::All
    );
    assert_eq!(
        rule(&format!(
            "{indexes}      platforms: list\n      platformlist:\n        - os: linux\n          architecture: arm64\n"
        )),
        IndexChildren::Platforms(vec![RequiredPlatform {
            os: "linux".into(),
            architecture: "arm64".into()
        }])
    );
    // Validation off (registry:3's disabled, registry:2's enabled: false): no child is checked.
    assert_eq!(rule("validation:\n  disabled: true\n"), IndexChildren::None);
    assert_eq!(rule("validation:\n  enabled: false\n"), IndexChildren::None);
    let l = load_env(
        None,
        &[("REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMS", "none")],
    );
    assert_eq!(l.config.index_children, IndexChildren::None);
    assert_eq!(warned(&l), []);
    assert_eq!(
        crate::serve::registry_settings(&l.config).index_children,
        IndexChildren::None
    );
    for (yaml, key) in [
        (
            format!("{indexes}      platforms: some\n"),
            "validation.manifests.indexes.platforms",
        ),
        (
            format!("{indexes}      platforms: list\n      platformlist:\n        - os: linux\n"),
            "validation.manifests.indexes.platformlist.0",
        ),
    ] {
        let err = error(&yaml);
        assert!(err.starts_with(key), "{yaml}: {err}");
    }
    // Printed and read back.
    let l = load_ok(&format!(
        "{indexes}      platforms: list\n      platformlist: [{{os: linux, architecture: amd64}}]\n"
    ));
    let printed = yaml::to_string(&l.config.to_yaml()).unwrap();
    assert_eq!(
        load_ok(&printed).config.index_children,
        l.config.index_children
    );
}

/// List items in variables, as registry:3's parser takes them (`_0`, `_1`, ...).
#[test]
fn list_items_in_variables() {
    let l = load_env(
        Some("http:\n  tls:\n    certificate: /c\n    key: /k\n"),
        &[
            ("REGISTRY_HTTP_TLS_CLIENTCAS_0", "/ca0.pem"),
            ("REGISTRY_HTTP_TLS_CLIENTCAS_1", "/ca1.pem"),
            ("REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMS", "list"),
            (
                "REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMLIST_0_OS",
                "linux",
            ),
            (
                "REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMLIST_0_ARCHITECTURE",
                "arm64",
            ),
            ("REGISTRY_AUTH_TOKEN_REALM", "r"),
            ("REGISTRY_AUTH_TOKEN_SERVICE", "s"),
            ("REGISTRY_AUTH_TOKEN_ISSUER", "i"),
            ("REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE", "/b"),
            ("REGISTRY_AUTH_TOKEN_SIGNINGALGORITHMS_0", "EdDSA"),
            ("REGISTRY_AUTH_TOKEN_SIGNINGALGORITHMS_1", "RS256"),
        ],
    );
    assert_eq!(warned(&l), []);
    let c = &l.config;
    assert_eq!(
        c.http.tls.as_ref().unwrap().client_cas,
        [PathBuf::from("/ca0.pem"), PathBuf::from("/ca1.pem")]
    );
    assert_eq!(
        c.index_children,
        registry::IndexChildren::Platforms(vec![registry::RequiredPlatform {
            os: "linux".into(),
            architecture: "arm64".into(),
        }])
    );
    assert_eq!(
        c.auth.token.as_ref().unwrap().signing_algorithms,
        ["EdDSA", "RS256"]
    );
    // An element a variable left incomplete is named.
    let err = load(
        None,
        &env(&[
            ("REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMS", "list"),
            (
                "REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMLIST_0_OS",
                "linux",
            ),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("validation.manifests.indexes.platformlist.0"),
        "{err}"
    );
}
