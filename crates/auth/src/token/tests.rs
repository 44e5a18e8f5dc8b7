//! Token verification against keys committed under `tests/data` (see its README): every way a token can
//! be wrong, each refused for its own reason.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::*;

pub(super) const ISSUER: &str = "test-token-service";
pub(super) const SERVICE: &str = "berth.test";

pub(super) fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub(super) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(super) fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": now() + 300,
        "nbf": now() - 10,
        "iat": now() - 10,
        "jti": "abc",
        "access": [
            {"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
            {"type": "repository", "name": "team/ro", "actions": ["pull"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
        ],
    })
}

fn sign(alg: Algorithm, key_file: &str, kid: Option<&str>, claims: &Value) -> String {
    let pem = std::fs::read(data(key_file)).unwrap();
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, &key).unwrap()
}

fn rs(claims: &Value) -> String {
    sign(Algorithm::RS256, "rsa-key.pem", None, claims)
}

/// A verifier trusting both test certificates through a bundle.
fn verifier() -> TokenVerifier {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.pem");
    let text = std::fs::read_to_string(data("rsa-cert.pem")).unwrap()
        + &std::fs::read_to_string(data("ec-cert.pem")).unwrap();
    std::fs::write(&bundle, text).unwrap();
    TokenVerifier::with_bundle(ISSUER, SERVICE, &bundle).unwrap()
}

fn with(mut c: Value, key: &str, value: Value) -> Value {
    c[key] = value;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

#[test]
fn accepts_rs256_and_es256_and_reads_the_grants() {
    let v = verifier();
    for token in [
        rs(&claims()),
        sign(Algorithm::ES256, "ec-key.pem", None, &claims()),
        sign(Algorithm::PS256, "rsa-key.pem", None, &claims()),
    ] {
        let t = v.verify(&token).unwrap();
        assert_eq!(t.subject.as_deref(), Some("alice"));
        assert!(t.grants.allows("team/app", Action::Pull));
        assert!(t.grants.allows("team/app", Action::Push));
        assert!(!t.grants.allows("team/app", Action::Delete));
        assert!(t.grants.allows("team/ro", Action::Pull));
        assert!(!t.grants.allows("team/ro", Action::Push));
        assert!(
            !t.grants.allows("team/app2", Action::Pull),
            "names are exact"
        );
        assert!(!t.grants.allows("team", Action::Pull));
        assert!(t.grants.catalog());
    }
}

#[test]
fn accepts_a_jwks_with_or_without_kid() {
    let v = TokenVerifier::load(&TokenSettings {
        realm: "https://auth.test/token".to_string(),
        service: SERVICE.to_string(),
        issuer: ISSUER.to_string(),
        rootcertbundle: None,
        jwks: Some(data("jwks.json")),
        signing_algorithms: Vec::new(),
    })
    .unwrap();
    for token in [
        sign(Algorithm::RS256, "rsa-key.pem", Some("rsa-test"), &claims()),
        sign(Algorithm::ES256, "ec-key.pem", Some("ec-test"), &claims()),
        sign(Algorithm::RS256, "rsa-key.pem", None, &claims()),
        // A kid the set does not have: every key of the family is tried.
        sign(Algorithm::RS256, "rsa-key.pem", Some("rotated"), &claims()),
    ] {
        assert!(v.verify(&token).is_ok());
    }
    // A kid naming the wrong key does not make a bad signature good.
    let forged = sign(
        Algorithm::RS256,
        "other-rsa-key.pem",
        Some("rsa-test"),
        &claims(),
    );
    assert_eq!(v.verify(&forged), Err(Rejection::Signature));
}

#[test]
fn refuses_tokens_signed_by_other_keys_or_tampered() {
    let v = verifier();
    let other = sign(Algorithm::RS256, "other-rsa-key.pem", None, &claims());
    assert_eq!(v.verify(&other), Err(Rejection::Signature));

    // Claims swapped under a good signature: grant delete on everything.
    let good = rs(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    use base64::Engine;
    let evil = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        with(
            claims(),
            "access",
            json!([{"type":"repository","name":"team/app","actions":["*"]}]),
        )
        .to_string(),
    );
    let tampered = format!("{}.{}.{}", parts[0], evil, parts[2]);
    assert_eq!(v.verify(&tampered), Err(Rejection::Signature));
}

#[test]
fn refuses_symmetric_and_unsigned_tokens() {
    let v = verifier();
    // The classic confusion: HS256 "signed" with the public certificate as the HMAC secret.
    let cert = std::fs::read(data("rsa-cert.pem")).unwrap();
    let hs = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(&cert),
    )
    .unwrap();
    assert!(matches!(v.verify(&hs), Err(Rejection::Algorithm(_))));

    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(json!({"alg":"none","typ":"JWT"})),
        b64(claims())
    );
    assert!(v.verify(&none).is_err());
    assert_eq!(v.verify("not a token"), Err(Rejection::Malformed));
    assert_eq!(v.verify(""), Err(Rejection::Malformed));
}

#[test]
fn checks_time_issuer_and_audience() {
    let v = verifier();
    let cases: Vec<(Value, Result<(), Rejection>)> = vec![
        (
            with(claims(), "exp", json!(now() - 3600)),
            Err(Rejection::Expired),
        ),
        // Within the leeway.
        (with(claims(), "exp", json!(now() - 30)), Ok(())),
        (
            with(claims(), "nbf", json!(now() + 3600)),
            Err(Rejection::NotYetValid),
        ),
        (with(claims(), "nbf", json!(now() + 30)), Ok(())),
        (without(claims(), "nbf"), Ok(())),
        (
            without(claims(), "exp"),
            Err(Rejection::Claims("exp".to_string())),
        ),
        (
            with(claims(), "iss", json!("someone-else")),
            Err(Rejection::Issuer),
        ),
        (
            without(claims(), "iss"),
            Err(Rejection::Claims("iss".to_string())),
        ),
        (
            with(claims(), "aud", json!("other.registry")),
            Err(Rejection::Audience),
        ),
        (
            with(claims(), "aud", json!(["other.registry", SERVICE])),
            Ok(()),
        ),
        (
            with(claims(), "aud", json!(["other.registry"])),
            Err(Rejection::Audience),
        ),
        (
            without(claims(), "aud"),
            Err(Rejection::Claims("aud".to_string())),
        ),
    ];
    for (c, want) in cases {
        assert_eq!(v.verify(&rs(&c)).map(|_| ()), want, "{c}");
    }
}

#[test]
fn a_token_without_access_grants_nothing() {
    let v = verifier();
    let t = v.verify(&rs(&without(claims(), "access"))).unwrap();
    assert!(!t.grants.allows("team/app", Action::Pull));
    assert!(!t.grants.catalog());
    let star = with(
        claims(),
        "access",
        json!([{"type":"repository","name":"x","actions":["*"]}]),
    );
    let t = v.verify(&rs(&star)).unwrap();
    for a in Action::ALL {
        assert!(t.grants.allows("x", a));
    }
}

#[test]
fn load_needs_keys_and_names() {
    let base = TokenSettings {
        realm: "https://auth/token".to_string(),
        service: SERVICE.to_string(),
        issuer: ISSUER.to_string(),
        rootcertbundle: None,
        jwks: None,
        signing_algorithms: Vec::new(),
    };
    let err = TokenVerifier::load(&base).unwrap_err().to_string();
    assert!(err.contains("rootcertbundle"), "{err}");
    let err = TokenVerifier::load(&TokenSettings {
        issuer: String::new(),
        rootcertbundle: Some(data("rsa-cert.pem")),
        ..base
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("auth.token.issuer"), "{err}");
}
