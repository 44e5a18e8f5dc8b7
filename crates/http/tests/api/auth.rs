//! Authentication and authorization through the router: htpasswd with berth's access policy, bearer
//! tokens, the catalog filter, path tricks that must not reach a repository the caller may not read, and
//! the promise that no secret reaches a response or a log line.
//!
//! The fixture pushes content through an open router over the same registry, then asks the guarded
//! router; the shared [`Harness`] still checks every response's invariants.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use auth::{AccessSettings, Authority, HtpasswdSettings, RuleSettings, Settings, TokenSettings};
use axum::http::Method;
use base64::Engine;
use oci::Digest;
use registry::Registry;
use tempfile::TempDir;

use crate::harness::{Harness, OCI_MANIFEST, Resp};

mod htpasswd;
mod secrets;
mod token;
mod tricks;

// alice:secret, bob:builder, carol:carol-pw (bcrypt, made with the bcrypt crate).
pub const HTPASSWD: &str = "\
alice:$2y$05$NHXi441vNlrHIergnkVaCOtieAaKJwCHnk6qQA.uPSpkVQkXtjd1C
bob:$2y$04$XgDFieE2q.frxR1xK5HPDeLI3XzP43L0.hVuHDIUqZhDOzsk5QggK
carol:$2y$04$uXBlXEosibWkICVGh9UHbOUSv9pYf1gBQButjm7hJsqgk7SfzhHgy
";

pub const REALM: &str = "berth test realm";

/// An open router (for setting content up) and a guarded one over the same registry.
pub struct Fixture {
    pub open: Harness,
    pub guarded: Harness,
    _dir: TempDir,
}

impl Fixture {
    pub fn new(settings: impl FnOnce(&std::path::Path) -> Settings) -> Fixture {
        Fixture::with(
            settings,
            registry::Settings {
                delete_enabled: true,
                ..registry::Settings::default()
            },
        )
    }

    /// [`new`](Self::new) with the registry's own settings.
    pub fn with(
        settings: impl FnOnce(&std::path::Path) -> Settings,
        registry_settings: registry::Settings,
    ) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let blobs = blobs::fs::FsBlobStore::open(dir.path().join("blobs")).unwrap();
        let meta =
            metadata::sqlite::SqliteStore::open(&dir.path().join("metadata.sqlite")).unwrap();
        let registry = Registry::new(Arc::new(blobs), Arc::new(meta), registry_settings);
        let authority = Authority::new(&settings(dir.path())).unwrap().unwrap();
        let mut open = Harness::new();
        open.app = berth_http::router(registry.clone());
        let mut guarded = Harness::new();
        guarded.app = berth_http::router_with_auth(registry, Some(Arc::new(authority)));
        Fixture {
            open,
            guarded,
            _dir: dir,
        }
    }

    /// Pushes an image tagged `latest` to `repo` through the open router; returns the manifest.
    pub async fn seed(&self, repo: &str) -> Vec<u8> {
        let m = self.open.image(repo, repo).await;
        self.open
            .put_manifest(repo, "latest", &m)
            .await
            .assert_status(201);
        m
    }

    /// A request to the guarded router with an `Authorization` header (if any).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        authorization: Option<&str>,
        body: Option<&[u8]>,
    ) -> Resp {
        let mut headers = vec![("accept", OCI_MANIFEST)];
        if let Some(a) = authorization {
            headers.push(("authorization", a));
        }
        if body.is_some() {
            headers.push(("content-type", "application/octet-stream"));
        }
        self.guarded.call(method, uri, &headers, body).await
    }

    pub async fn get(&self, uri: &str, authorization: Option<&str>) -> Resp {
        self.call(Method::GET, uri, authorization, None).await
    }
}

pub fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub fn rule(repos: &[&str], actions: &[&str]) -> RuleSettings {
    RuleSettings {
        repositories: strings(repos),
        actions: strings(actions),
        ..RuleSettings::default()
    }
}

/// htpasswd (alice, bob, carol) and a policy: anyone pulls `public/**`; alice (admins) does everything;
/// bob (team-a) pulls and pushes `team-a/*`; carol pulls and pushes `carol/*`.
pub fn htpasswd_settings(dir: &std::path::Path) -> Settings {
    let path = dir.join("htpasswd");
    std::fs::write(&path, HTPASSWD).unwrap();
    Settings {
        htpasswd: Some(HtpasswdSettings {
            realm: REALM.to_string(),
            path,
        }),
        token: None,
        access: Some(AccessSettings {
            openbase: false,
            groups: BTreeMap::from([
                ("admins".to_string(), strings(&["alice"])),
                ("team-a".to_string(), strings(&["bob"])),
            ]),
            rules: vec![
                RuleSettings {
                    anonymous: true,
                    ..rule(&["public/**"], &["pull"])
                },
                RuleSettings {
                    groups: strings(&["team-a"]),
                    ..rule(&["team-a/*"], &["pull", "push"])
                },
                RuleSettings {
                    users: strings(&["carol"]),
                    ..rule(&["carol/*"], &["pull", "push"])
                },
                RuleSettings {
                    groups: strings(&["admins"]),
                    ..rule(&["**"], &["pull", "push", "delete"])
                },
            ],
        }),
    }
}

/// The key files of the auth crate's tests.
pub fn key_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../auth/tests/data")
        .join(name)
}

pub fn token_settings(_dir: &std::path::Path) -> Settings {
    Settings {
        htpasswd: None,
        token: Some(TokenSettings {
            realm: "https://auth.test/token".to_string(),
            service: "berth.test".to_string(),
            issuer: "test-issuer".to_string(),
            rootcertbundle: Some(key_file("rsa-cert.pem")),
            jwks: None,
            signing_algorithms: Vec::new(),
        }),
        access: None,
    }
}

/// Asserts a 401 with the spec's code and the challenge.
#[track_caller]
pub fn assert_challenged(r: &Resp, challenge: &str) {
    r.assert_error(401, "UNAUTHORIZED");
    assert_eq!(r.header("www-authenticate"), challenge);
}

/// Pushes one blob in a single POST as `authorization`; returns the response and the digest.
pub async fn push_blob(
    f: &Fixture,
    repo: &str,
    data: &[u8],
    authorization: Option<&str>,
) -> (Resp, Digest) {
    let digest = Digest::sha256_of(data);
    let r = f
        .call(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            authorization,
            Some(data),
        )
        .await;
    (r, digest)
}
