//! The decision table of the [`Authority`] in both modes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use super::*;
use crate::settings::{AccessSettings, HtpasswdSettings, RuleSettings, TokenSettings};

const ALICE: &str = "alice:$2y$05$NHXi441vNlrHIergnkVaCOtieAaKJwCHnk6qQA.uPSpkVQkXtjd1C"; // secret
const BOB: &str = "bob:$2y$04$XgDFieE2q.frxR1xK5HPDeLI3XzP43L0.hVuHDIUqZhDOzsk5QggK"; // builder

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// htpasswd with alice (admin: everything) and bob (pulls everything, pushes bob/*); anonymous pulls
/// public/**.
fn htpasswd_authority(dir: &Path, access: bool) -> Authority {
    let path = dir.join("htpasswd");
    std::fs::write(&path, format!("{ALICE}\n{BOB}\n")).unwrap();
    let access = access.then(|| AccessSettings {
        openbase: false,
        groups: BTreeMap::from([("admins".to_string(), strings(&["alice"]))]),
        rules: vec![
            RuleSettings {
                repositories: strings(&["public/**"]),
                actions: strings(&["pull"]),
                anonymous: true,
                ..RuleSettings::default()
            },
            RuleSettings {
                repositories: strings(&["**"]),
                actions: strings(&["pull"]),
                users: strings(&["bob"]),
                ..RuleSettings::default()
            },
            RuleSettings {
                repositories: strings(&["bob/*"]),
                actions: strings(&["push"]),
                users: strings(&["bob"]),
                ..RuleSettings::default()
            },
            RuleSettings {
                repositories: strings(&["**"]),
                actions: strings(&["pull", "push", "delete"]),
                groups: strings(&["admins"]),
                ..RuleSettings::default()
            },
        ],
    });
    Authority::new(&Settings {
        htpasswd: Some(HtpasswdSettings {
            realm: "berth test".to_string(),
            path,
        }),
        token: None,
        access,
    })
    .unwrap()
    .unwrap()
}

fn pull(name: &str) -> Scope {
    Scope::repository(name, &[Action::Pull])
}

fn push(name: &str) -> Scope {
    Scope::repository(name, &[Action::Pull, Action::Push])
}

fn unauthorized(challenge: &str) -> Decision {
    Decision::Unauthorized {
        challenge: challenge.to_string(),
    }
}

#[test]
fn no_auth_means_open_and_access_alone_is_an_error() {
    assert!(Authority::new(&Settings::default()).unwrap().is_none());
    let err = Authority::new(&Settings {
        access: Some(AccessSettings::default()),
        ..Settings::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("access"), "{err}");
}

#[tokio::test]
async fn htpasswd_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let a = htpasswd_authority(dir.path(), true);
    let challenge = r#"Basic realm="berth test""#;

    // Wrong credentials are a 401 even where anonymous callers may pull.
    for header in [
        basic("alice", "wrong"),
        basic("nobody", "secret"),
        basic("alice", ""),
        "Bearer abc".to_string(),
        "Basic %%%".to_string(),
    ] {
        assert_eq!(
            a.authenticate(Some(&header)).await.err(),
            Some(unauthorized(challenge)),
            "{header}"
        );
    }

    let anon = a.authenticate(None).await.unwrap();
    let empty = a.authenticate(Some(&basic("", ""))).await.unwrap();
    let alice = a
        .authenticate(Some(&basic("alice", "secret")))
        .await
        .unwrap();
    let bob = a
        .authenticate(Some(&basic("bob", "builder")))
        .await
        .unwrap();
    assert_eq!(empty.identity, Identity::Anonymous);
    assert_eq!(alice.identity, Identity::User("alice".to_string()));

    let table: Vec<(&Caller, Vec<Scope>, Decision)> = vec![
        // GET /v2/: challenge anonymous callers so clients learn to authenticate.
        (&anon, vec![], unauthorized(challenge)),
        (&bob, vec![], Decision::Allow),
        (&anon, vec![pull("public/alpine")], Decision::Allow),
        (&empty, vec![pull("public/alpine")], Decision::Allow),
        (&anon, vec![push("public/alpine")], unauthorized(challenge)),
        (&anon, vec![pull("private/app")], unauthorized(challenge)),
        (&bob, vec![pull("private/app")], Decision::Allow),
        (&bob, vec![push("bob/app")], Decision::Allow),
        (&bob, vec![push("private/app")], Decision::Denied),
        (
            &bob,
            vec![Scope::repository("bob/app", &[Action::Delete])],
            Decision::Denied,
        ),
        // A mount: push on the target and pull on the source, both needed.
        (
            &bob,
            vec![push("bob/app"), pull("private/app")],
            Decision::Allow,
        ),
        (
            &alice,
            vec![Scope::repository("x/y", &[Action::Delete])],
            Decision::Allow,
        ),
        // Catalog: any user; anonymous callers too, since they have rights somewhere.
        (&bob, vec![Scope::Catalog], Decision::Allow),
        (&anon, vec![Scope::Catalog], Decision::Allow),
    ];
    for (caller, wants, want) in table {
        assert_eq!(a.authorize(caller, &wants), want, "{caller:?} {wants:?}");
    }

    assert!(a.lists(&anon, "public/alpine"));
    assert!(!a.lists(&anon, "private/app"));
    assert!(a.lists(&bob, "private/app"));
}

#[tokio::test]
async fn htpasswd_without_rules_is_registry2() {
    let dir = tempfile::tempdir().unwrap();
    let a = htpasswd_authority(dir.path(), false);
    let anon = a.authenticate(None).await.unwrap();
    let bob = a
        .authenticate(Some(&basic("bob", "builder")))
        .await
        .unwrap();
    assert!(matches!(
        a.authorize(&anon, &[pull("any")]),
        Decision::Unauthorized { .. }
    ));
    assert!(matches!(
        a.authorize(&anon, &[Scope::Catalog]),
        Decision::Unauthorized { .. }
    ));
    assert_eq!(a.authorize(&bob, &[push("any/thing")]), Decision::Allow);
    assert_eq!(
        a.authorize(&bob, &[Scope::repository("any", &[Action::Delete])]),
        Decision::Allow
    );
}

#[tokio::test]
async fn openbase_lets_anonymous_callers_ping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, ALICE).unwrap();
    let a = Authority::new(&Settings {
        htpasswd: Some(HtpasswdSettings {
            realm: "r".to_string(),
            path,
        }),
        token: None,
        access: Some(AccessSettings {
            openbase: true,
            ..AccessSettings::default()
        }),
    })
    .unwrap()
    .unwrap();
    let anon = a.authenticate(None).await.unwrap();
    assert_eq!(a.authorize(&anon, &[]), Decision::Allow);
    assert!(matches!(
        a.authorize(&anon, &[pull("x")]),
        Decision::Unauthorized { .. }
    ));
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn token(access: serde_json::Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": "issuer", "sub": "carol", "aud": "berth", "exp": now + 60, "access": access,
    });
    let key = EncodingKey::from_rsa_pem(&std::fs::read(data("rsa-key.pem")).unwrap()).unwrap();
    encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
}

#[tokio::test]
async fn token_decisions() {
    let a = Authority::new(&Settings {
        htpasswd: None,
        token: Some(TokenSettings {
            realm: "https://auth.test/token".to_string(),
            service: "berth".to_string(),
            issuer: "issuer".to_string(),
            rootcertbundle: Some(data("rsa-cert.pem")),
            jwks: None,
            signing_algorithms: Vec::new(),
        }),
        access: Some(AccessSettings {
            rules: vec![RuleSettings {
                repositories: strings(&["public/*"]),
                actions: strings(&["pull"]),
                anonymous: true,
                ..RuleSettings::default()
            }],
            ..AccessSettings::default()
        }),
    })
    .unwrap()
    .unwrap();
    let base = r#"Bearer realm="https://auth.test/token",service="berth""#;

    let bad = token(json!([])).replace('.', "x.");
    assert_eq!(
        a.authenticate(Some(&format!("Bearer {bad}"))).await.err(),
        Some(unauthorized(base))
    );
    assert_eq!(
        a.authenticate(Some(&basic("alice", "secret"))).await.err(),
        Some(unauthorized(base)),
        "Basic is not taken in token mode"
    );

    let anon = a.authenticate(None).await.unwrap();
    let header = format!(
        "Bearer {}",
        token(json!([{"type":"repository","name":"team/app","actions":["pull"]}]))
    );
    let carol = a.authenticate(Some(&header)).await.unwrap();
    assert_eq!(carol.identity, Identity::User("carol".to_string()));

    assert_eq!(a.authorize(&anon, &[]), unauthorized(base));
    assert_eq!(a.authorize(&carol, &[]), Decision::Allow);
    assert_eq!(a.authorize(&anon, &[pull("public/x")]), Decision::Allow);
    assert_eq!(
        a.authorize(&anon, &[push("team/app")]),
        unauthorized(&format!(r#"{base},scope="repository:team/app:pull,push""#))
    );
    assert_eq!(a.authorize(&carol, &[pull("team/app")]), Decision::Allow);
    assert_eq!(
        a.authorize(&carol, &[pull("public/x")]),
        Decision::Allow,
        "anonymous rights too"
    );
    assert_eq!(
        a.authorize(&carol, &[push("team/app")]),
        unauthorized(&format!(
            r#"{base},scope="repository:team/app:pull,push",error="insufficient_scope""#
        ))
    );
    assert_eq!(
        a.authorize(&carol, &[Scope::Catalog]),
        unauthorized(&format!(
            r#"{base},scope="registry:catalog:*",error="insufficient_scope""#
        ))
    );
    assert!(a.lists(&carol, "team/app") && !a.lists(&carol, "team/other"));

    let lister = a
        .authenticate(Some(&format!(
            "Bearer {}",
            token(json!([{"type":"registry","name":"catalog","actions":["*"]}]))
        )))
        .await
        .unwrap();
    assert_eq!(a.authorize(&lister, &[Scope::Catalog]), Decision::Allow);
    assert!(a.lists(&lister, "team/other"));
}

#[test]
fn tokens_berth_obtained_verify_as_the_apis_and_their_rights_add_up() {
    let a = Authority::new(&Settings {
        token: Some(TokenSettings {
            realm: "https://auth.test/token".to_string(),
            service: "berth".to_string(),
            issuer: "issuer".to_string(),
            rootcertbundle: Some(data("rsa-cert.pem")),
            jwks: None,
            signing_algorithms: Vec::new(),
        }),
        ..Settings::default()
    })
    .unwrap()
    .unwrap();
    assert!(a.takes_tokens());
    let one = token(json!([{"type":"repository","name":"team/app","actions":["pull"]}]));
    let two = token(json!([{"type":"repository","name":"team/db","actions":["pull","delete"]}]));
    let mut carol = a.verify_token(&one).unwrap();
    assert_eq!(carol.identity, Identity::User("carol".to_string()));
    assert!(
        a.verify_token(&one.replace('.', "x."))
            .unwrap_err()
            .starts_with("bearer token refused")
    );

    carol.absorb(a.verify_token(&two).unwrap());
    assert!(a.may(&carol, "team/app", Action::Pull));
    assert!(a.may(&carol, "team/db", Action::Delete));
    assert!(!a.may(&carol, "team/app", Action::Delete));

    // Another user's rights never pass over; a holder starts with nothing.
    let mut dave = Caller::token_holder("dave".to_string());
    dave.absorb(carol.clone());
    assert!(!a.may(&dave, "team/app", Action::Pull));
    let mut fresh = Caller::token_holder("carol".to_string());
    assert!(!a.may(&fresh, "team/app", Action::Pull));
    fresh.absorb(carol);
    assert!(a.may(&fresh, "team/app", Action::Pull));

    let dir = tempfile::tempdir().unwrap();
    let h = htpasswd_authority(dir.path(), false);
    assert!(!h.takes_tokens());
    assert!(h.verify_token(&one).is_err());
}

#[test]
fn both_modes_at_once_is_an_error() {
    let err = Authority::new(&Settings {
        htpasswd: Some(HtpasswdSettings {
            realm: "r".to_string(),
            path: PathBuf::from("/nonexistent"),
        }),
        token: Some(TokenSettings {
            realm: "r".to_string(),
            service: "s".to_string(),
            issuer: "i".to_string(),
            rootcertbundle: None,
            jwks: None,
            signing_algorithms: Vec::new(),
        }),
        access: None,
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("not both"), "{err}");
}
