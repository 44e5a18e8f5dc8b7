//! registry:3's `signingalgorithms`: EdDSA tokens from an Ed25519 certificate or JWK, HS256 from a JWKS
//! shared secret only when listed, and a token of an algorithm left out of the list refused whatever
//! key would verify it.

use std::path::Path;

use base64::Engine;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::Value;

use super::tests::{ISSUER, SERVICE, claims, data};
use super::*;

const SECRET: &[u8] = b"a shared secret of the token service, 32+ bytes long";

fn settings(bundle: Option<&Path>, jwks: Option<&Path>, algs: &[&str]) -> TokenSettings {
    TokenSettings {
        realm: "https://auth.test/token".to_string(),
        service: SERVICE.to_string(),
        issuer: ISSUER.to_string(),
        rootcertbundle: bundle.map(Path::to_path_buf),
        jwks: jwks.map(Path::to_path_buf),
        signing_algorithms: algs.iter().map(|a| a.to_string()).collect(),
    }
}

fn signed(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).unwrap()
}

fn ed_key() -> EncodingKey {
    EncodingKey::from_ed_pem(&std::fs::read(data("ed-key.pem")).unwrap()).unwrap()
}

/// A JWKS holding the shared secret, as `oct` with key id `hs-test`.
fn oct_jwks(dir: &Path) -> std::path::PathBuf {
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
    let path = dir.join("oct.json");
    std::fs::write(
        &path,
        format!(r#"{{"keys":[{{"kty":"oct","kid":"hs-test","k":"{k}"}}]}}"#),
    )
    .unwrap();
    path
}

#[test]
fn eddsa_tokens_verify_with_an_ed25519_certificate_by_default() {
    let v = TokenVerifier::load(&settings(Some(&data("ed-cert.pem")), None, &[])).unwrap();
    let t = v
        .verify(&signed(Algorithm::EdDSA, &ed_key(), None, &claims()))
        .unwrap();
    assert!(t.grants.allows("team/app", Action::Push));
    // Left out of the list, EdDSA is refused though the key would verify it.
    let v = TokenVerifier::load(&settings(Some(&data("ed-cert.pem")), None, &["RS256"])).unwrap();
    assert_eq!(
        v.verify(&signed(Algorithm::EdDSA, &ed_key(), None, &claims())),
        Err(Rejection::Algorithm("EdDSA".into()))
    );
}

#[test]
fn eddsa_tokens_verify_with_an_okp_jwk() {
    let jwks = data("ed-jwks.json");
    let v = TokenVerifier::load(&settings(None, Some(&jwks), &["EdDSA"])).unwrap();
    assert!(
        v.verify(&signed(
            Algorithm::EdDSA,
            &ed_key(),
            Some("ed-test"),
            &claims()
        ))
        .is_ok()
    );
}

#[test]
fn hs256_only_when_listed_and_only_with_a_shared_secret() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = oct_jwks(dir.path());
    // A shared secret in the JWKS without HS listed stops the start, naming the key.
    let err = TokenVerifier::load(&settings(None, Some(&jwks), &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("auth.token.jwks") && err.contains("HS256"),
        "{err}"
    );

    let v = TokenVerifier::load(&settings(
        Some(&data("rsa-cert.pem")),
        Some(&jwks),
        &["HS256", "RS256"],
    ))
    .unwrap();
    let hs = EncodingKey::from_secret(SECRET);
    let t = v
        .verify(&signed(Algorithm::HS256, &hs, Some("hs-test"), &claims()))
        .unwrap();
    assert_eq!(t.subject.as_deref(), Some("alice"));
    // HS384 is not listed.
    assert_eq!(
        v.verify(&signed(Algorithm::HS384, &hs, None, &claims())),
        Err(Rejection::Algorithm("HS384".into()))
    );
    // The classic confusion stays refused with HS listed: the certificate's public key as the secret.
    let cert = EncodingKey::from_secret(&std::fs::read(data("rsa-cert.pem")).unwrap());
    assert_eq!(
        v.verify(&signed(Algorithm::HS256, &cert, None, &claims())),
        Err(Rejection::Signature)
    );
    // RS256 still verifies beside it; a list without it refuses it.
    let rsa = EncodingKey::from_rsa_pem(&std::fs::read(data("rsa-key.pem")).unwrap()).unwrap();
    assert!(
        v.verify(&signed(Algorithm::RS256, &rsa, None, &claims()))
            .is_ok()
    );
    let v = TokenVerifier::load(&settings(Some(&data("rsa-cert.pem")), None, &["EdDSA"])).unwrap();
    assert_eq!(
        v.verify(&signed(Algorithm::RS256, &rsa, None, &claims())),
        Err(Rejection::Algorithm("RS256".into()))
    );
}

#[test]
fn a_name_registry3_does_not_know_stops_the_start() {
    let err = TokenVerifier::load(&settings(Some(&data("rsa-cert.pem")), None, &["RS257"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("auth.token.signingalgorithms"), "{err}");
}
