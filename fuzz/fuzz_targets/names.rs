//! `oci`'s vocabulary: digests, repository names, tags, references and the `*`/`**` patterns of the
//! configuration.
//!
//! Checked: no panic; whatever parses prints back as exactly the text it came from (names and digests are
//! keys and paths: a second spelling of one would be a second object); a digest's hex is lowercase and of
//! its algorithm's length; a name holds no empty or dot-only component. Patterns (the input's first line,
//! matched against the second): every name a pattern matches starts with its literal prefix, a pattern
//! without a wildcard matches itself and nothing else, and `*` never matches across a `/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oci::{Digest, Pattern, Reference, RepoName, Tag};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(d) = text.parse::<Digest>() {
        assert_eq!(d.to_string(), text);
        assert_eq!(d.hex().len(), d.algorithm().hex_len());
        assert!(
            d.hex()
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
    }
    if let Ok(n) = text.parse::<RepoName>() {
        assert_eq!(n.to_string(), text);
        assert!(n.as_str().len() <= oci::name::MAX_NAME_LEN);
        assert!(
            n.as_str()
                .split('/')
                .all(|c| !c.is_empty() && c.bytes().any(|b| b.is_ascii_alphanumeric())),
            "{text:?}"
        );
    }
    if let Ok(t) = text.parse::<Tag>() {
        assert_eq!(t.to_string(), text);
        assert!(t.as_str().len() <= 128);
    }
    if let Ok(r) = text.parse::<Reference>() {
        assert_eq!(r.to_string(), text);
        match &r {
            Reference::Tag(t) => assert_eq!(text.parse::<Tag>().as_ref(), Ok(t)),
            Reference::Digest(d) => assert_eq!(text.parse::<Digest>().as_ref(), Ok(d)),
        }
    }

    let (pattern, name) = text.split_once('\n').unwrap_or((text, text));
    for (p, is_repository) in [
        (Pattern::repository(pattern), true),
        (Pattern::tag(pattern), false),
    ] {
        let Ok(p) = p else { continue };
        assert_eq!(p.as_str(), pattern);
        if p.matches(name) {
            assert!(name.starts_with(p.literal_prefix()), "{pattern:?} {name:?}");
            if !pattern.contains('*') {
                assert_eq!(name, pattern);
            }
            // Without `**`, a repository pattern's `/`s are the name's.
            if is_repository && !pattern.contains("**") {
                assert_eq!(name.matches('/').count(), pattern.matches('/').count());
            }
        }
        if !pattern.contains('*') {
            assert!(p.matches(pattern), "{pattern:?} does not match itself");
        }
    }
});
