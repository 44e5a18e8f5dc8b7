//! Repository names, tags and references, validated by the distribution spec's grammar.
//!
//! A `RepoName` is safe to use as a key anywhere: it can never contain `..`, empty components, uppercase
//! letters or anything outside `[a-z0-9._/-]`.

use std::fmt;
use std::str::FromStr;

use crate::{Digest, DigestError};

/// Longest repository name accepted, as registry:2 (the spec leaves it to the registry; hostname plus
/// name must fit in 255 characters for clients to address it).
pub const MAX_NAME_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid repository name {0:?}")]
    InvalidName(String),
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
    #[error(transparent)]
    InvalidDigest(#[from] DigestError),
}

fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One path component: alphanumerics separated by `.`, `_`, `__` or any run of `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl FromStr for RepoName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > MAX_NAME_LEN || !s.split('/').all(valid_component) {
            return Err(NameError::InvalidName(clip(s)));
        }
        Ok(RepoName(s.to_string()))
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter()
                .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'));
        if ok {
            Ok(Tag(s.to_string()))
        } else {
            Err(NameError::InvalidTag(clip(s)))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a manifest URL names: a tag or a digest. A string with a `:` is a digest, anything else a tag
/// (tags cannot contain `:`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(s.parse()?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        let long_ok = "a".repeat(MAX_NAME_LEN);
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        let cases: &[(&str, bool)] = &[
            ("alpine", true),
            ("library/alpine", true),
            ("a/b/c/d/e", true),
            ("my-org/my.app_v2", true),
            ("a__b", true),
            ("a---b", true),
            ("ghcr.io/org/app", true),
            ("0", true),
            (&long_ok, true),
            (&too_long, false),
            ("", false),
            ("Alpine", false),
            ("a//b", false),
            ("/a", false),
            ("a/", false),
            ("a/../b", false),
            ("..", false),
            ("a___b", false),
            ("a._b", false),
            ("-a", false),
            ("a-", false),
            ("a b", false),
            ("a%2fb", false),
            ("a:b", false),
        ];
        for (s, ok) in cases {
            assert_eq!(s.parse::<RepoName>().is_ok(), *ok, "{s:?}");
        }
    }

    #[test]
    fn tags() {
        let t128 = "t".repeat(128);
        let t129 = "t".repeat(129);
        let cases: &[(&str, bool)] = &[
            ("latest", true),
            ("v1.2.3-rc_1", true),
            ("_x", true),
            ("UPPER", true),
            (&t128, true),
            (&t129, false),
            ("", false),
            (".x", false),
            ("-x", false),
            ("a/b", false),
            ("a:b", false),
            ("a b", false),
        ];
        for (s, ok) in cases {
            assert_eq!(s.parse::<Tag>().is_ok(), *ok, "{s:?}");
        }
    }

    #[test]
    fn references() {
        let d = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(d.parse::<Reference>(), Ok(Reference::Digest(_))));
        assert!(matches!(
            "latest".parse::<Reference>(),
            Ok(Reference::Tag(_))
        ));
        assert!(matches!(
            "sha256:nope".parse::<Reference>(),
            Err(NameError::InvalidDigest(_))
        ));
        assert!(matches!(
            "bad tag".parse::<Reference>(),
            Err(NameError::InvalidTag(_))
        ));
    }
}
