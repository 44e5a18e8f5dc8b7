//! registry:2's sample configurations load unchanged, and what berth makes of them; the defaults.

use super::*;

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
            ("validation.manifests.urls", Ignored),
            ("redis", Ignored),
            ("reporting", Ignored),
            ("middleware", Ignored),
            ("compatibility", Ignored),
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
