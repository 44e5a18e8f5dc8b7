//! The keys that verify token signatures: from `auth.token.rootcertbundle` (PEM certificates, as registry:2
//! takes them: RSA, EC P-256/P-384, Ed25519) and/or `auth.token.jwks` (a JSON Web Key Set). A shared
//! secret (an `oct` key) only when the HMAC algorithms are listed in `signingalgorithms`
//! (`algorithms.rs`): it lets whoever reads the registry's configuration mint tokens.
//!
//! The certificates are trusted as key holders, not as a chain: the token service signs with the private
//! key of one of them. (registry:2 also accepts a leaf certificate in the token's `x5c` header chained to a
//! bundle certificate; berth does not, and says so in the documentation.)

use std::path::Path;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};

use crate::Error;

/// The family of algorithms a key verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Rsa,
    Ec,
    /// Ed25519 (EdDSA).
    Ed,
    /// A shared secret (HS256/384/512).
    Hmac,
}

/// One verification key.
#[derive(Clone)]
pub struct Key {
    /// The JWKS `kid`, when the key came from one (tokens name their key by it).
    pub kid: Option<String>,
    pub family: Family,
    pub key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .finish()
    }
}

const BUNDLE_KEY: &str = "auth.token.rootcertbundle";
const JWKS_KEY: &str = "auth.token.jwks";

/// The keys of every PEM block (`CERTIFICATE` or `PUBLIC KEY`) in the bundle at `path`.
pub fn from_bundle(path: &Path) -> Result<Vec<Key>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        key: BUNDLE_KEY,
        path: path.to_path_buf(),
        source,
    })?;
    let fail = |reason: String| Error::Keys {
        key: BUNDLE_KEY,
        path: path.to_path_buf(),
        reason,
    };
    let blocks = pem_blocks(&text);
    if blocks.is_empty() {
        return Err(fail("no PEM certificate in the file".to_string()));
    }
    blocks
        .iter()
        .enumerate()
        .map(|(i, block)| {
            let pem = block.as_bytes();
            if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
                Ok(Key {
                    kid: None,
                    family: Family::Rsa,
                    key,
                })
            } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
                Ok(Key {
                    kid: None,
                    family: Family::Ec,
                    key,
                })
            } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
                Ok(Key {
                    kid: None,
                    family: Family::Ed,
                    key,
                })
            } else {
                Err(fail(format!(
                    "PEM block {} holds no RSA, EC (P-256/P-384) or Ed25519 public key",
                    i + 1
                )))
            }
        })
        .collect()
}

/// The keys of the JWKS at `path`; shared secrets (`oct`) only with `hmac` (an HS algorithm is listed).
pub fn from_jwks(path: &Path, hmac: bool) -> Result<Vec<Key>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        key: JWKS_KEY,
        path: path.to_path_buf(),
        source,
    })?;
    let fail = |reason: String| Error::Keys {
        key: JWKS_KEY,
        path: path.to_path_buf(),
        reason,
    };
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| fail(format!("not a JSON Web Key Set: {e}")))?;
    if set.keys.is_empty() {
        return Err(fail("the key set is empty".to_string()));
    }
    set.keys
        .iter()
        .enumerate()
        .map(|(i, jwk)| {
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Family::Rsa,
                AlgorithmParameters::EllipticCurve(_) => Family::Ec,
                AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
                AlgorithmParameters::OctetKey(_) if hmac => Family::Hmac,
                AlgorithmParameters::OctetKey(_) => {
                    return Err(fail(format!(
                        "key {} is a shared secret (symmetric, oct), accepted only when \
                         auth.token.signingalgorithms lists HS256, HS384 or HS512",
                        i + 1
                    )));
                }
            };
            let key =
                DecodingKey::from_jwk(jwk).map_err(|e| fail(format!("key {}: {e}", i + 1)))?;
            Ok(Key {
                kid: jwk.common.key_id.clone(),
                family,
                key,
            })
        })
        .collect()
}

/// The `-----BEGIN X-----` ... `-----END X-----` blocks of a PEM file, each whole.
fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
        if line.starts_with("-----END ")
            && let Some(block) = current.take()
        {
            blocks.push(block);
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name)
    }

    #[test]
    fn reads_a_bundle_of_rsa_and_ec_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle.pem");
        let text = std::fs::read_to_string(data("rsa-cert.pem")).unwrap()
            + "\n# a comment between certificates\n"
            + &std::fs::read_to_string(data("ec-cert.pem")).unwrap();
        std::fs::write(&bundle, text).unwrap();
        let keys = from_bundle(&bundle).unwrap();
        let families: Vec<Family> = keys.iter().map(|k| k.family).collect();
        assert_eq!(families, [Family::Rsa, Family::Ec]);
    }

    #[test]
    fn refuses_bundles_without_keys() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let err = from_bundle(&empty).unwrap_err().to_string();
        assert!(err.contains(BUNDLE_KEY) && err.contains("no PEM"), "{err}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = from_bundle(&junk).unwrap_err().to_string();
        assert!(err.contains("PEM block 1"), "{err}");
        let err = from_bundle(&dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(BUNDLE_KEY), "{err}");
    }

    #[test]
    fn reads_a_jwks_and_refuses_symmetric_keys() {
        let keys = from_jwks(&data("jwks.json"), false).unwrap();
        let kids: Vec<Option<&str>> = keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("rsa-test"), Some("ec-test")]);

        let dir = tempfile::tempdir().unwrap();
        let oct = dir.path().join("oct.json");
        std::fs::write(&oct, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
        let err = from_jwks(&oct, false).unwrap_err().to_string();
        assert!(err.contains("symmetric") && err.contains("HS256"), "{err}");
        let keys = from_jwks(&oct, true).unwrap();
        assert_eq!(keys[0].family, Family::Hmac);
        std::fs::write(&oct, "[]").unwrap();
        assert!(
            from_jwks(&oct, true)
                .unwrap_err()
                .to_string()
                .contains("JSON Web Key Set")
        );
    }
}
