//! Which signature algorithms a token may be signed with: registry:3's `auth.token.signingalgorithms`.
//!
//! Unset, berth accepts every asymmetric algorithm it verifies: RS256/384/512, PS256/384/512,
//! ES256/384 and EdDSA (Ed25519). registry:3's default list also holds HS256/384/512; berth takes the HMAC
//! algorithms only when the list names them, because they verify with a shared secret (an `oct` key of
//! the JWKS) that lets whoever reads the registry's configuration mint tokens. Even then an HMAC token is
//! checked only against `oct` keys, never against a certificate's public key (the classic confusion).
//!
//! Names are registry:3's, compared exactly as it compares them. ES512 is one of them, but berth's JWT
//! library has no P-521: the configuration layer warns and leaves it out.

use jsonwebtoken::Algorithm;

use super::keys::Family;

/// What is accepted when `signingalgorithms` is not set.
pub const DEFAULT: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// registry:3's names that berth cannot verify.
pub const UNSUPPORTED: &[&str] = &["ES512"];

/// The algorithms of `names` (registry:3's spellings); empty: [`DEFAULT`].
pub fn parse(names: &[String]) -> Result<Vec<Algorithm>, String> {
    if names.is_empty() {
        return Ok(DEFAULT.to_vec());
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let alg = match name.as_str() {
            "EdDSA" => Algorithm::EdDSA,
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES512" => return Err("ES512 (P-521) cannot be verified by berth".into()),
            other => {
                return Err(format!(
                    "{other:?} is not a signing algorithm (EdDSA, HS256, HS384, HS512, RS256, RS384, \
                     RS512, ES256, ES384, ES512, PS256, PS384, PS512)"
                ));
            }
        };
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    Ok(out)
}

/// The family of keys that verify `alg`.
pub fn family(alg: Algorithm) -> Family {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Family::Rsa,
        Algorithm::ES256 | Algorithm::ES384 => Family::Ec,
        Algorithm::EdDSA => Family::Ed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_registry3_writes_them() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse(&[]).unwrap(), DEFAULT);
        assert!(!DEFAULT.iter().any(|a| family(*a) == Family::Hmac));
        assert_eq!(
            parse(&names(&["EdDSA", "HS256", "EdDSA"])).unwrap(),
            [Algorithm::EdDSA, Algorithm::HS256]
        );
        assert!(parse(&names(&["ES512"])).unwrap_err().contains("P-521"));
        assert!(
            parse(&names(&["hs256"]))
                .unwrap_err()
                .contains("EdDSA, HS256")
        );
        assert!(parse(&names(&["none"])).is_err());
    }
}
