//! The htpasswd file format, bcrypt entries only.
//!
//! One `user:hash` per line, as Apache's `htpasswd -B` writes them. Blank lines and lines starting with `#`
//! are skipped, and surrounding whitespace is trimmed (registry:2 reads the file the same way). Only bcrypt
//! hashes (`$2y$`, `$2b$`, `$2a$`) are accepted, as in registry:2: the other formats htpasswd can write
//! (MD5 `$apr1$`, `{SHA}`, crypt, plain text) are weak, and a file holding one is refused with the line
//! number and the kind of hash, never the hash itself. A user listed twice keeps its last entry (as
//! registry:2), with a warning naming the user and line.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use crate::Error;

/// The users of an htpasswd file and their bcrypt hashes.
#[derive(Clone, Default)]
pub struct Entries {
    pub(crate) users: HashMap<String, String>,
    /// The highest bcrypt cost in the file: unknown users are checked against a dummy hash of this cost,
    /// so that the time of an answer does not tell whether the user exists.
    pub(crate) max_cost: u32,
}

impl Entries {
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }
}

impl std::fmt::Debug for Entries {
    /// Names the users, never their hashes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.users.keys().collect();
        users.sort();
        f.debug_struct("Entries").field("users", &users).finish()
    }
}

/// Parses the text of the file at `path` (the path only names it in errors).
pub fn parse(text: &str, path: &Path) -> Result<Entries, Error> {
    let mut entries = Entries::default();
    // Editors on Windows start UTF-8 files with a byte-order mark; left in, it would become part of the
    // first user's name and lock that user out without a word.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |reason: String| Error::HtpasswdLine {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        let Some((user, hash)) = line.split_once(':') else {
            return Err(fail("expected user:hash".to_string()));
        };
        if user.is_empty() {
            return Err(fail("the user name is empty".to_string()));
        }
        // No client can send such a name (and a log line would have to escape it): a stray mark or
        // control character is a broken file, said at once rather than found by a locked-out user.
        if user.chars().any(|c| c.is_control() || c == '\u{feff}') {
            return Err(fail(format!(
                "the user name {user:?} holds a control character or byte-order mark"
            )));
        }
        let cost = bcrypt_cost(hash).map_err(|kind| {
            fail(format!(
                "the entry for {user:?} is {kind}; berth accepts bcrypt entries only \
                 (create them with `htpasswd -B`)"
            ))
        })?;
        entries.max_cost = entries.max_cost.max(cost);
        if entries
            .users
            .insert(user.to_string(), hash.to_string())
            .is_some()
        {
            tracing::warn!(path = %path.display(), line = line_no, user, "user listed twice in the htpasswd file; the last entry counts");
        }
    }
    Ok(entries)
}

/// The cost of a well-formed bcrypt hash, or what kind of hash it is instead.
fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    let kind = if hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$") {
        match bcrypt::HashParts::from_str(hash) {
            Ok(parts) if (4..=31).contains(&parts.get_cost()) => return Ok(parts.get_cost()),
            Ok(_) => "a bcrypt hash with a cost outside 4..31",
            Err(_) => "a malformed bcrypt hash",
        }
    } else if hash.starts_with("$2x$") {
        "a bcrypt hash of the buggy $2x$ variant"
    } else if hash.starts_with("$apr1$") {
        "an MD5 (apr1) hash"
    } else if hash.starts_with("$1$") {
        "an MD5-crypt hash"
    } else if hash.starts_with("$5$") {
        "a SHA-256-crypt hash"
    } else if hash.starts_with("$6$") {
        "a SHA-512-crypt hash"
    } else if hash.starts_with("{SHA}") {
        "a SHA-1 hash"
    } else if hash.starts_with('$') {
        "a hash of an unknown kind"
    } else if hash.is_empty() {
        "empty"
    } else {
        "a crypt(3) hash or a plain-text password"
    };
    Err(kind.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // alice:secret (cost 5) and bob:builder (cost 4), made with the bcrypt crate.
    const ALICE: &str = "alice:$2y$05$NHXi441vNlrHIergnkVaCOtieAaKJwCHnk6qQA.uPSpkVQkXtjd1C";
    const BOB: &str = "bob:$2b$04$XgDFieE2q.frxR1xK5HPDeLI3XzP43L0.hVuHDIUqZhDOzsk5QggK";

    fn path() -> &'static Path {
        Path::new("/etc/berth/htpasswd")
    }

    #[test]
    fn reads_bcrypt_entries_comments_and_blanks() {
        let text = format!("# users\n\n{ALICE}\r\n  {BOB}  \n");
        let e = parse(&text, path()).unwrap();
        assert_eq!(e.len(), 2);
        assert!(e.contains("alice") && e.contains("bob"));
        assert_eq!(e.max_cost, 5);
    }

    #[test]
    fn refuses_other_hash_types_naming_line_and_type_but_not_the_hash() {
        let cases = [
            ("carol:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "MD5 (apr1)"),
            ("carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
            ("carol:$6$salt$abcdefghijklmnop", "SHA-512-crypt"),
            ("carol:$5$salt$abcdefghijklmnop", "SHA-256-crypt"),
            ("carol:$1$salt$abcdefghijklmnop", "MD5-crypt"),
            ("carol:rqXexS6ZhobKA", "plain-text"),
            ("carol:$2y$05$tooshort", "malformed bcrypt"),
            (
                "carol:$2y$99$NHXi441vNlrHIergnkVaCOtieAaKJwCHnk6qQA.uPSpkVQkXtjd1C",
                "cost",
            ),
            ("carol:", "empty"),
            ("carol", "user:hash"),
            (
                ":$2y$05$NHXi441vNlrHIergnkVaCOtieAaKJwCHnk6qQA.uPSpkVQkXtjd1C",
                "user name is empty",
            ),
        ];
        for (line, kind) in cases {
            let text = format!("{ALICE}\n# comment\n{line}\n");
            let err = parse(&text, path()).unwrap_err().to_string();
            assert!(err.contains("line 3"), "{err}");
            assert!(err.contains(kind), "{line}: {err}");
            assert!(err.contains("/etc/berth/htpasswd"), "{err}");
            let hash = line.split_once(':').map(|(_, h)| h).unwrap_or("");
            if hash.len() > 3 {
                assert!(!err.contains(hash), "the error shows the hash: {err}");
            }
        }
    }

    #[test]
    fn last_duplicate_wins() {
        let other = "alice:$2b$04$XgDFieE2q.frxR1xK5HPDeLI3XzP43L0.hVuHDIUqZhDOzsk5QggK";
        let e = parse(&format!("{ALICE}\n{other}\n"), path()).unwrap();
        assert_eq!(e.len(), 1);
        assert!(e.users["alice"].starts_with("$2b$04$"));
    }

    #[test]
    fn debug_shows_users_not_hashes() {
        let e = parse(ALICE, path()).unwrap();
        let shown = format!("{e:?}");
        assert!(
            shown.contains("alice") && !shown.contains("$2y$"),
            "{shown}"
        );
    }
}
