//! `auth::htpasswd::parse`: the text of an htpasswd file (bcrypt entries only).
//!
//! Checked: no panic; an accepted file holds every user its entry lines name, and no more users than
//! entry lines; a refusal names the file and a line number, and (as the module promises) never the hash
//! of the line it refuses; the entries' `Debug` shows users, never hashes. bcrypt itself is not run: the
//! parser only reads a hash's cost.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

const PATH: &str = "/etc/berth/htpasswd";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let entries: Vec<(&str, &str)> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once(':').unwrap_or((l, "")))
        .collect();
    match auth::htpasswd::parse(text, Path::new(PATH)) {
        Ok(parsed) => {
            assert!(parsed.len() <= entries.len());
            for (user, hash) in &entries {
                assert!(parsed.contains(user), "{user:?} missing");
                assert!(hash.starts_with("$2"), "{hash:?} accepted");
            }
            // Users, sorted, and nothing else.
            let mut users: Vec<&str> = entries.iter().map(|(user, _)| *user).collect();
            users.sort_unstable();
            users.dedup();
            assert_eq!(parsed.len(), users.len());
            assert_eq!(
                format!("{parsed:?}"),
                format!("Entries {{ users: {users:?} }}")
            );
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(PATH) && message.contains("line "),
                "{message}"
            );
            for (_, hash) in &entries {
                if secret_looking(hash) && !shown_elsewhere(&entries, hash) {
                    assert!(!message.contains(hash), "the error shows a hash: {message}");
                }
            }
        }
    }
});

/// A hash long enough, and without spaces, not to be found by chance in the messages' own words.
fn secret_looking(hash: &str) -> bool {
    hash.len() >= 16 && !hash.contains(char::is_whitespace)
}

/// Whether `hash` is also text that may rightly be shown: a user's name (as written or quoted) or the
/// file's path.
fn shown_elsewhere(entries: &[(&str, &str)], hash: &str) -> bool {
    PATH.contains(hash)
        || entries
            .iter()
            .any(|(user, _)| user.contains(hash) || format!("{user:?}").contains(hash))
}
