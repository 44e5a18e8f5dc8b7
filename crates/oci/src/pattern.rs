//! Patterns of repository names and tags, as the configuration writes them: `team-a/*`, `team-a/**`,
//! `**`, `*/cache` for repositories (the access policy, immutable tags), `v*`, `release-*` for tags.
//!
//! `*` matches within one path component (any run of characters but `/`); `**` matches across components
//! (any run of characters, `/` included; tags have no `/`, so there both mean the same). Everything else
//! matches itself. A pattern holding a character the names it is for can never hold (an uppercase letter
//! in a repository pattern) could never match anything: it is refused when the configuration is loaded
//! rather than silently matching nothing.
//!
//! Matching is a dynamic programme over (pattern position, name position), linear in their product, so no
//! pattern can make a match take exponential time.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `*`
    Star,
    /// `**`
    DoubleStar,
}

impl Pattern {
    /// A pattern of repository names.
    pub fn repository(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("a repository pattern cannot be empty".to_string());
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/*".contains(*c)))
        {
            return Err(format!(
                "{text:?} holds {bad:?}; repository names (and patterns) use lowercase letters, digits, \
                 '.', '_', '-' and '/', plus '*' and '**' as wildcards"
            ));
        }
        Pattern::tokens(text)
    }

    /// A pattern of tags.
    pub fn tag(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("a tag pattern cannot be empty".to_string());
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._-*".contains(*c)))
        {
            return Err(format!(
                "{text:?} holds {bad:?}; tags (and patterns) use letters, digits, '.', '_' and '-', \
                 plus '*' as a wildcard"
            ));
        }
        Pattern::tokens(text)
    }

    fn tokens(text: &str) -> Result<Pattern, String> {
        if text.contains("***") {
            return Err(format!("{text:?}: use '*' or '**', not three stars"));
        }
        let bytes = text.as_bytes();
        let mut tokens = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'*' {
                if bytes.get(i + 1) == Some(&b'*') {
                    tokens.push(Token::DoubleStar);
                    i += 2;
                } else {
                    tokens.push(Token::Star);
                    i += 1;
                }
            } else {
                tokens.push(Token::Byte(bytes[i]));
                i += 1;
            }
        }
        Ok(Pattern {
            text: text.to_string(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The text before the first wildcard: every name the pattern matches starts with it.
    pub fn literal_prefix(&self) -> &str {
        self.text.split('*').next().unwrap_or_default()
    }

    /// Whether `name` matches the whole pattern.
    /// Whether this is `**` alone: every name.
    pub fn matches_everything(&self) -> bool {
        self.tokens == [Token::DoubleStar]
    }

    pub fn matches(&self, name: &str) -> bool {
        let name = name.as_bytes();
        // reach[j]: the tokens so far can match exactly name[..j].
        let mut reach = vec![false; name.len() + 1];
        reach[0] = true;
        for token in &self.tokens {
            let mut next = vec![false; name.len() + 1];
            match token {
                Token::Byte(b) => {
                    for j in 0..name.len() {
                        next[j + 1] = reach[j] && name[j] == *b;
                    }
                }
                Token::Star | Token::DoubleStar => {
                    let crosses = *token == Token::DoubleStar;
                    for j in 0..=name.len() {
                        next[j] =
                            reach[j] || (j > 0 && next[j - 1] && (crosses || name[j - 1] != b'/'));
                    }
                }
            }
            reach = next;
        }
        reach[name.len()]
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_table() {
        let table: &[(&str, &str, bool)] = &[
            ("**", "a", true),
            ("**", "a/b/c", true),
            ("library/alpine", "library/alpine", true),
            ("library/alpine", "library/alpine2", false),
            ("library/alpine", "library", false),
            ("team-a/*", "team-a/app", true),
            ("team-a/*", "team-a/app/sub", false),
            ("team-a/*", "team-a", false),
            ("team-a/*", "team-ab/app", false),
            ("team-a/**", "team-a/app", true),
            ("team-a/**", "team-a/app/sub", true),
            ("team-a/**", "team-a", false),
            ("team-a/**", "team-b/app", false),
            ("*", "app", true),
            ("*", "team/app", false),
            ("*/cache", "team/cache", true),
            ("*/cache", "a/b/cache", false),
            ("**/cache", "a/b/cache", true),
            ("app-*", "app-1", true),
            ("app-*", "app-", true),
            ("app-*", "app", false),
            ("a*b", "ab", true),
            ("a*b", "a/b", false),
            ("a**b", "a/x/b", true),
            // Literal dots are not regex wildcards.
            ("a.b", "axb", false),
        ];
        for (pattern, name, want) in table {
            let p = Pattern::repository(pattern).unwrap();
            assert_eq!(p.matches(name), *want, "{pattern} vs {name}");
        }
    }

    #[test]
    fn refuses_patterns_that_could_never_match() {
        for bad in [
            "",
            "Team/*",
            "team a",
            "team/%2f",
            "a***",
            "team/[ab]",
            "a?",
        ] {
            assert!(Pattern::repository(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tag_patterns() {
        let semver = Pattern::tag("v*.*.*").unwrap();
        assert!(semver.matches("v1.2.3") && semver.matches("v10.0.0-rc.1"));
        assert!(!semver.matches("latest") && !semver.matches("v1.2"));
        assert!(Pattern::tag("Release_*").unwrap().matches("Release_2026"));
        for bad in ["", "a/b", "a b", "v?", "[v]*"] {
            assert!(Pattern::tag(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn many_stars_stay_fast() {
        let p = Pattern::repository(&"*a".repeat(40)).unwrap();
        let name = "a".repeat(200) + "b";
        let started = std::time::Instant::now();
        assert!(!p.matches(&name));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
