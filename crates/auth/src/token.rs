//! Bearer tokens per Docker's token authentication specification: JWTs that an external token service
//! signs and berth verifies.
//!
//! A token is accepted when, all of:
//! - its algorithm is one `signingalgorithms` allows (`token/algorithms.rs`: by default the asymmetric
//!   RS256/384/512, PS256/384/512, ES256/384 and EdDSA; HS256/384/512 only when listed; `none` never),
//!   and its signature verifies with one of the configured keys (`rootcertbundle` and/or `jwks`) of
//!   that algorithm's family, so a public key can never be abused as an HMAC secret;
//! - `iss` equals `auth.token.issuer`, and `aud` (a string or a list) contains `auth.token.service`;
//! - `exp` is present and not past, and `nbf` (if present) is reached, both with [`LEEWAY`] for clock skew.
//!
//! Its `access` claim (`[{type, name, actions}]`) then says what it grants: `repository` entries grant
//! actions on one repository by exact name, `registry:catalog:*` grants the catalog. `*` in `actions`
//! grants every action.

use std::path::Path;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::settings::TokenSettings;
use crate::{Action, Error};

pub mod algorithms;
pub mod keys;

use keys::{Family, Key};

/// Clock skew tolerated on `exp` and `nbf`, as registry:2.
pub const LEEWAY_SECS: u64 = 60;
/// [`LEEWAY_SECS`] as a duration, for documentation.
pub const LEEWAY: std::time::Duration = std::time::Duration::from_secs(LEEWAY_SECS);

/// Verifies the tokens of one token service.
#[derive(Debug)]
pub struct TokenVerifier {
    issuer: String,
    service: String,
    keys: Vec<Key>,
    /// `signingalgorithms`, or the default.
    algorithms: Vec<Algorithm>,
}

/// A token that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `sub`: the user the token service authenticated (empty for an anonymous token).
    pub subject: Option<String>,
    pub grants: Grants,
}

/// The `access` claim.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants(Vec<AccessEntry>);

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
struct AccessEntry {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    actions: Vec<String>,
}

impl Grants {
    /// Whether the claim grants `action` on repository `repo`.
    pub fn allows(&self, repo: &str, action: Action) -> bool {
        self.0.iter().any(|e| {
            e.kind == "repository"
                && e.name == repo
                && e.actions.iter().any(|a| a == action.as_str() || a == "*")
        })
    }

    /// Adds the entries of another token's claim.
    pub fn extend(&mut self, other: Grants) {
        self.0.extend(other.0);
    }

    /// Whether the claim grants `registry:catalog:*`.
    pub fn catalog(&self) -> bool {
        self.0.iter().any(|e| {
            e.kind == "registry" && e.name == "catalog" && e.actions.iter().any(|a| a == "*")
        })
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    access: Vec<AccessEntry>,
}

/// Why a token was refused: for the log (it holds nothing of the token) and for tests.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("not a well-formed JWT")]
    Malformed,
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("no configured key verifies the signature")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("not valid yet (nbf)")]
    NotYetValid,
    #[error("issued by another issuer")]
    Issuer,
    #[error("issued for another service (aud)")]
    Audience,
    #[error("a required claim is missing or malformed: {0}")]
    Claims(String),
}

impl TokenVerifier {
    /// Loads the keys named by `settings`; at least one source must be given and hold a key.
    pub fn load(settings: &TokenSettings) -> Result<TokenVerifier, Error> {
        for (key, value) in [
            ("auth.token.realm", &settings.realm),
            ("auth.token.service", &settings.service),
            ("auth.token.issuer", &settings.issuer),
        ] {
            if value.is_empty() {
                return Err(Error::config(key, "required with auth.token"));
            }
        }
        let algorithms = algorithms::parse(&settings.signing_algorithms)
            .map_err(|reason| Error::config("auth.token.signingalgorithms", reason))?;
        let hmac = algorithms
            .iter()
            .any(|a| algorithms::family(*a) == Family::Hmac);
        let mut keys = Vec::new();
        if let Some(path) = &settings.rootcertbundle {
            keys.extend(keys::from_bundle(path)?);
        }
        if let Some(path) = &settings.jwks {
            keys.extend(keys::from_jwks(path, hmac)?);
        }
        if keys.is_empty() {
            return Err(Error::config(
                "auth.token",
                "give rootcertbundle or jwks: the keys that verify tokens",
            ));
        }
        Ok(TokenVerifier {
            issuer: settings.issuer.clone(),
            service: settings.service.clone(),
            keys,
            algorithms,
        })
    }

    /// Convenience for tests and tools: a verifier over the keys of one bundle file.
    pub fn with_bundle(issuer: &str, service: &str, bundle: &Path) -> Result<TokenVerifier, Error> {
        TokenVerifier::load(&TokenSettings {
            realm: "unused".to_string(),
            service: service.to_string(),
            issuer: issuer.to_string(),
            rootcertbundle: Some(bundle.to_path_buf()),
            jwks: None,
            signing_algorithms: Vec::new(),
        })
    }

    /// Verifies `token` (the text after `Bearer `).
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, Rejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Rejection::Algorithm(format!("{:?}", header.alg)));
        }
        let family = algorithms::family(header.alg);
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.service]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);

        // The key the token names, if a JWKS key has that id; otherwise every key of the family.
        let named: Vec<&Key> = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.family == family && k.kid.as_deref() == Some(kid.as_str()))
                .collect(),
            None => Vec::new(),
        };
        let candidates: Vec<&Key> = if named.is_empty() {
            self.keys.iter().filter(|k| k.family == family).collect()
        } else {
            named
        };
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    return Ok(VerifiedToken {
                        subject: data.claims.sub.filter(|s| !s.is_empty()),
                        grants: Grants(data.claims.access),
                    });
                }
                Err(e) => match e.kind() {
                    // Another key may be the one: keep trying.
                    ErrorKind::InvalidSignature
                    | ErrorKind::InvalidKeyFormat
                    | ErrorKind::InvalidAlgorithm
                    | ErrorKind::InvalidEcdsaKey
                    | ErrorKind::InvalidRsaKey(_)
                    | ErrorKind::Provider(_) => continue,
                    // The signature checked out (claims are validated after it); the claims did not.
                    ErrorKind::ExpiredSignature => return Err(Rejection::Expired),
                    ErrorKind::ImmatureSignature => return Err(Rejection::NotYetValid),
                    ErrorKind::InvalidIssuer => return Err(Rejection::Issuer),
                    ErrorKind::InvalidAudience => return Err(Rejection::Audience),
                    ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => {
                        return Err(Rejection::Claims(c.clone()));
                    }
                    ErrorKind::Json(_) => {
                        return Err(Rejection::Claims(
                            "the claims are not valid JSON".to_string(),
                        ));
                    }
                    _ => return Err(Rejection::Malformed),
                },
            }
        }
        Err(Rejection::Signature)
    }
}

#[cfg(test)]
#[path = "token/tests.rs"]
mod tests;
#[cfg(test)]
#[path = "token/tests_algorithms.rs"]
mod tests_algorithms;
