//! Reads the `Authorization` header into [`Credentials`].
//!
//! Clients of the containers/image family (podman, skopeo, buildah) answer a Basic challenge with empty
//! credentials (`Basic Og==`, i.e. `:`) when they have none; that is how they pull anonymously from a
//! registry that challenges `GET /v2/`, so an empty user with an empty password counts as no credentials.
//!
//! `Debug` is written by hand: the password and the token are never formatted, so a stray `{:?}` in a
//! log line cannot leak them.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// What a request presented.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header (or empty Basic credentials).
    None,
    /// `Basic base64(user:password)`.
    Basic { user: String, password: String },
    /// `Bearer <token>`.
    Bearer(String),
    /// A header that is neither: an unknown scheme or undecodable Basic credentials.
    Malformed,
}

impl Credentials {
    /// Parses the header's value. The scheme is case-insensitive (RFC 9110).
    pub fn parse(header: Option<&str>) -> Credentials {
        let Some(value) = header else {
            return Credentials::None;
        };
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            basic(rest)
        } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            Credentials::Bearer(rest.to_string())
        } else {
            Credentials::Malformed
        }
    }
}

fn basic(encoded: &str) -> Credentials {
    let Ok(bytes) = STANDARD.decode(encoded) else {
        return Credentials::Malformed;
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Credentials::Malformed;
    };
    match text.split_once(':') {
        Some(("", "")) => Credentials::None,
        Some(("", _)) | None => Credentials::Malformed,
        Some((user, password)) => Credentials::Basic {
            user: user.to_string(),
            password: password.to_string(),
        },
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user:?}, <password>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<token>)"),
            Credentials::Malformed => f.write_str("Malformed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn parses_the_schemes() {
        let basic = |u: &str, p: &str| Credentials::Basic {
            user: u.to_string(),
            password: p.to_string(),
        };
        let cases: Vec<(Option<String>, Credentials)> = vec![
            (None, Credentials::None),
            (
                Some(format!("Basic {}", b64("alice:s3cret"))),
                basic("alice", "s3cret"),
            ),
            (
                Some(format!("basic {}", b64("alice:s3cret"))),
                basic("alice", "s3cret"),
            ),
            // Only the first colon separates: passwords may contain colons.
            (
                Some(format!("Basic {}", b64("alice:a:b"))),
                basic("alice", "a:b"),
            ),
            (Some(format!("Basic {}", b64("alice:"))), basic("alice", "")),
            (Some(format!("Basic {}", b64(":"))), Credentials::None),
            (
                Some(format!("Basic {}", b64(":pw"))),
                Credentials::Malformed,
            ),
            (
                Some(format!("Basic {}", b64("nocolon"))),
                Credentials::Malformed,
            ),
            (Some("Basic !!!".to_string()), Credentials::Malformed),
            (Some("Basic".to_string()), Credentials::Malformed),
            (
                Some("Bearer abc.def.ghi".to_string()),
                Credentials::Bearer("abc.def.ghi".to_string()),
            ),
            (
                Some("BEARER abc".to_string()),
                Credentials::Bearer("abc".to_string()),
            ),
            (Some("Bearer ".to_string()), Credentials::Malformed),
            (Some("Digest x".to_string()), Credentials::Malformed),
            (Some(String::new()), Credentials::Malformed),
        ];
        for (header, want) in cases {
            assert_eq!(Credentials::parse(header.as_deref()), want, "{header:?}");
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credentials::parse(Some(&format!("Basic {}", b64("alice:hunter2"))));
        let shown = format!("{c:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
        let t = Credentials::parse(Some("Bearer eyJsecret"));
        assert!(!format!("{t:?}").contains("eyJsecret"));
    }
}
