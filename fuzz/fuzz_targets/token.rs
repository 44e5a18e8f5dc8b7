//! Bearer tokens: `auth::credentials::Credentials::parse` (the `Authorization` header) and
//! `auth::token::TokenVerifier::verify` (Docker's JWTs), against the auth crate's test keys
//! (`crates/auth/tests/data`).
//!
//! The first byte picks what the rest is:
//! - 0: an `Authorization` header value. Checked: `Debug` of what it parses to never shows the password or
//!   the token; a bearer token goes on to `verify`;
//! - 1: a token, straight to `verify`;
//! - 2: JWT claims (JSON), signed here with the trusted EC key, `iss`, `aud` and a future `exp` filled in
//!   where the input has none, so the fuzzer reaches what only a well-signed token reaches. Checked: a
//!   token signed with a trusted key is never refused for its signature or its shape, only for its claims;
//!   an accepted one has the configured issuer and audience, its subject is `sub` (when not empty), and
//!   what its grants allow is what its `access` claim lists.
//!
//! Always: no panic.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use auth::Action;
use auth::credentials::Credentials;
use auth::token::{Rejection, TokenVerifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const ISSUER: &str = "test-token-service";
const SERVICE: &str = "berth.test";
const EC_KEY: &str = include_str!("../../crates/auth/tests/data/ec-key.pem");
const BUNDLE: [&str; 2] = [
    include_str!("../../crates/auth/tests/data/rsa-cert.pem"),
    include_str!("../../crates/auth/tests/data/ec-cert.pem"),
];

fn verifier() -> &'static TokenVerifier {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        // The verifier reads its keys from a file, as berth does.
        let path: PathBuf =
            std::env::temp_dir().join(format!("berth-fuzz-token-{}.pem", std::process::id()));
        std::fs::write(&path, BUNDLE.concat()).expect("write the key bundle");
        let verifier = TokenVerifier::with_bundle(ISSUER, SERVICE, &path).expect("test keys load");
        let _ = std::fs::remove_file(&path);
        verifier
    })
}

fn signing_key() -> &'static EncodingKey {
    static KEY: OnceLock<EncodingKey> = OnceLock::new();
    KEY.get_or_init(|| EncodingKey::from_ec_pem(EC_KEY.as_bytes()).expect("test key loads"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match mode % 3 {
        0 => header(text),
        1 => {
            let _ = verifier().verify(text);
        }
        _ => signed(text),
    }
});

fn header(value: &str) {
    let credentials = Credentials::parse(Some(value));
    let shown = format!("{credentials:?}");
    match &credentials {
        Credentials::Basic { user, .. } => {
            assert!(!user.is_empty());
            assert_eq!(shown, format!("Basic({user:?}, <password>)"));
        }
        Credentials::Bearer(token) => {
            assert!(!token.is_empty());
            assert_eq!(shown, "Bearer(<token>)");
            let _ = verifier().verify(token);
        }
        Credentials::None | Credentials::Malformed => {}
    }
}

fn signed(claims: &str) {
    let Ok(mut claims) = serde_json::from_str::<Value>(claims) else {
        return;
    };
    if let Value::Object(map) = &mut claims {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        map.entry("iss").or_insert(json!(ISSUER));
        map.entry("aud").or_insert(json!(SERVICE));
        map.entry("exp").or_insert(json!(now + 300));
    }
    let Ok(token) = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, signing_key())
    else {
        return;
    };
    match verifier().verify(&token) {
        Ok(verified) => {
            assert_eq!(claims["iss"], json!(ISSUER));
            let aud = &claims["aud"];
            assert!(
                aud == &json!(SERVICE)
                    || aud.as_array().is_some_and(|a| a.contains(&json!(SERVICE))),
                "{aud}"
            );
            assert_eq!(
                verified.subject.as_deref(),
                claims["sub"].as_str().filter(|s| !s.is_empty())
            );
            let access = claims["access"].as_array().cloned().unwrap_or_default();
            for entry in &access {
                let (Some(kind), Some(name)) = (entry["type"].as_str(), entry["name"].as_str())
                else {
                    continue;
                };
                let actions: Vec<&str> = entry["actions"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if kind == "repository" {
                    for action in Action::ALL {
                        if actions.iter().any(|a| *a == action.as_str() || *a == "*") {
                            assert!(verified.grants.allows(name, action), "{entry}");
                        }
                    }
                }
            }
            // Nothing is granted that no entry lists.
            for action in Action::ALL {
                let probe = "fuzz/not-listed";
                let listed = access.iter().any(|e| e["name"] == json!(probe));
                assert!(listed || !verified.grants.allows(probe, action));
            }
        }
        Err(Rejection::Signature | Rejection::Malformed | Rejection::Algorithm(_)) => {
            panic!(
                "a token signed with a trusted key refused: {:?}",
                verifier().verify(&token)
            )
        }
        Err(_) => {}
    }
}
