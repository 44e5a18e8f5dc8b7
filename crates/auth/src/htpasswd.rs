//! Basic authentication against an htpasswd file, reloaded when the file changes on disk.
//!
//! The file must exist when berth starts: a missing file stops the start with an error saying how to create
//! one. (registry:2 instead writes a file with a random admin password and prints the password; a
//! credential in a log is exactly what this crate promises never to produce, so berth refuses.)
//!
//! Reload: at most every [`RELOAD_CHECK`], the next request stats the file; if its modification time, size
//! or inode changed it is read again. A file that no longer parses, or has disappeared, is logged (without
//! its contents) and the last good entries stay in force, so a half-written edit cannot lock everyone out
//! or let anyone in. Each successful reload starts a new generation, which invalidates the [`cache`] of
//! verified passwords.
//!
//! Verification: bcrypt is slow on purpose, so it runs on tokio's blocking pool, never on the async
//! threads. An unknown user is checked against a dummy hash of the file's highest cost, so the answer
//! takes as long whether or not the user exists. bcrypt's own comparison is constant-time.
//!
//! [`cache`]: crate::cache

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::Error;
use crate::recent::{DEFAULT_TTL, RecentVerifications};

mod parse;

pub use parse::{Entries, parse};

/// How often the file is checked for changes (on demand: by the first request after this long).
pub const RELOAD_CHECK: Duration = Duration::from_secs(3);

/// The verifier for one htpasswd file. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Htpasswd {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    check_every: Duration,
    cache: RecentVerifications,
    state: Mutex<State>,
}

struct State {
    entries: Arc<Entries>,
    /// A bcrypt hash of nothing anyone knows, at the file's highest cost.
    dummy: Arc<String>,
    stamp: Option<Stamp>,
    checked: Instant,
    generation: u64,
}

/// What tells that the file changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)?;
        Ok(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}

impl Htpasswd {
    /// Reads the file; any error (missing, unreadable, a refused line) stops the start.
    pub fn load(path: &Path) -> Result<Htpasswd, Error> {
        Htpasswd::load_with(path, RELOAD_CHECK, DEFAULT_TTL)
    }

    /// [`Htpasswd::load`] with other intervals (tests shorten them).
    pub fn load_with(path: &Path, check_every: Duration, ttl: Duration) -> Result<Htpasswd, Error> {
        let stamp = Stamp::of(path).map_err(|source| Error::Read {
            key: "auth.htpasswd.path",
            path: path.to_path_buf(),
            source: missing_hint(source),
        })?;
        let entries = Arc::new(read(path)?);
        if entries.is_empty() {
            tracing::warn!(path = %path.display(), "the htpasswd file lists no users: nobody can log in");
        }
        warn_of_empty_passwords(path, &entries);
        let dummy = dummy_hash(entries.max_cost);
        Ok(Htpasswd {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                check_every,
                cache: RecentVerifications::new(ttl),
                state: Mutex::new(State {
                    entries,
                    dummy: Arc::new(dummy),
                    stamp: Some(stamp),
                    checked: Instant::now(),
                    generation: 0,
                }),
            }),
        })
    }

    /// Whether `password` is `user`'s. Runs bcrypt on the blocking pool unless the same credentials
    /// verified recently against the same file.
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        // An empty password is no secret (and no client sends one on purpose: `docker login` refuses
        // it): never accepted, whatever the file holds. It tells nothing about the user.
        if password.is_empty() {
            return false;
        }
        if self.reload_due() {
            let this = self.clone();
            // A failed join only means the check did not run; the next request retries it.
            let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
        }
        let (entries, dummy, generation) = {
            let s = self.inner.lock();
            (s.entries.clone(), s.dummy.clone(), s.generation)
        };
        let key = self.inner.cache.key(user, password);
        if self.inner.cache.hit(&key, generation) {
            return true;
        }
        let (hash, known) = match entries.users.get(user) {
            Some(hash) => (hash.clone(), true),
            None => ((*dummy).clone(), false),
        };
        let password = password.to_string();
        let matched = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = matched && known;
        if ok {
            self.inner.cache.insert(key, generation);
        }
        ok
    }

    /// The users now in force (for tests and diagnostics).
    pub fn entries(&self) -> Arc<Entries> {
        self.inner.lock().entries.clone()
    }

    fn reload_due(&self) -> bool {
        self.inner.lock().checked.elapsed() >= self.inner.check_every
    }

    /// Stats the file and reads it again if it changed. Blocking: call it off the async threads.
    pub fn reload_if_changed(&self) {
        let path = &self.inner.path;
        let stamp = Stamp::of(path).ok();
        {
            let mut s = self.inner.lock();
            s.checked = Instant::now();
            if stamp == s.stamp {
                return;
            }
            // Recorded before reading, so a broken file is reported once per change, not per check.
            s.stamp = stamp;
        }
        if stamp.is_none() {
            tracing::error!(path = %path.display(), "the htpasswd file has disappeared; keeping the users last read");
            return;
        }
        match read(path) {
            Ok(entries) => {
                let entries = Arc::new(entries);
                warn_of_empty_passwords(path, &entries);
                let dummy = dummy_hash(entries.max_cost);
                let users = entries.len();
                let mut s = self.inner.lock();
                s.entries = entries;
                s.dummy = Arc::new(dummy);
                s.generation += 1;
                tracing::info!(path = %path.display(), users, "htpasswd file reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "the htpasswd file changed but cannot be used; keeping the users last read");
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-updated (each update is whole
        // assignments), so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn read(path: &Path) -> Result<Entries, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        key: "auth.htpasswd.path",
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

fn missing_hint(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        std::io::Error::new(
            e.kind(),
            "no such file; create it with `htpasswd -cB <file> <user>` (bcrypt entries only)",
        )
    } else {
        e
    }
}

/// The users whose entry is the hash of an empty password, sorted. One bcrypt per entry: call it off
/// the async threads.
pub fn users_with_empty_passwords(entries: &Entries) -> Vec<String> {
    let mut users: Vec<String> = entries
        .users
        .iter()
        .filter(|(_, hash)| bcrypt::verify("", hash).unwrap_or(false))
        .map(|(user, _)| user.clone())
        .collect();
    users.sort();
    users
}

/// Warns, from a thread of its own so that neither the start nor a reload waits for the bcrypt runs, of
/// each user whose entry holds an empty password: `verify` refuses empty passwords, so that user cannot
/// log in, and the operator should know why.
fn warn_of_empty_passwords(path: &Path, entries: &Arc<Entries>) {
    let (path, entries) = (path.to_path_buf(), entries.clone());
    let spawned = std::thread::Builder::new()
        .name("htpasswd-check".into())
        .spawn(move || {
            for user in users_with_empty_passwords(&entries) {
                tracing::warn!(path = %path.display(), user = %user, "the htpasswd entry of this user has an empty password, which berth never accepts: the user cannot log in");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not check the htpasswd file for empty passwords");
    }
}

/// A hash of a random password nobody is told, for timing parity on unknown users. Its cost follows the
/// file's highest (at least bcrypt's minimum, at most 16 so a typo cannot stall a reload for minutes).
fn dummy_hash(cost: u32) -> String {
    let secret = uuid::Uuid::new_v4().simple().to_string();
    // Hashing can only fail for a cost outside 4..=31, which the clamp rules out; an empty dummy would
    // then simply never verify.
    bcrypt::hash(secret, cost.clamp(4, 16)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice:$2y$05$NHXi441vNlrHIergnkVaCOtieAaKJwCHnk6qQA.uPSpkVQkXtjd1C"; // secret
    const BOB: &str = "bob:$2y$04$XgDFieE2q.frxR1xK5HPDeLI3XzP43L0.hVuHDIUqZhDOzsk5QggK"; // builder
    const CAROL: &str = "carol:$2y$04$uXBlXEosibWkICVGh9UHbOUSv9pYf1gBQButjm7hJsqgk7SfzhHgy"; // carol-pw

    fn file(lines: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, lines.join("\n")).unwrap();
        (dir, path)
    }

    #[tokio::test]
    async fn verifies_passwords() {
        let (_d, path) = file(&[ALICE, BOB]);
        let h = Htpasswd::load(&path).unwrap();
        assert!(h.verify("alice", "secret").await);
        assert!(h.verify("bob", "builder").await);
        assert!(!h.verify("alice", "builder").await, "wrong password");
        assert!(!h.verify("alice", "").await);
        assert!(!h.verify("nobody", "secret").await, "unknown user");
        assert!(
            !h.verify("Alice", "secret").await,
            "user names are case-sensitive"
        );
        // Cached successes still refuse other passwords.
        assert!(h.verify("alice", "secret").await);
        assert!(!h.verify("alice", "secret2").await);
    }

    /// A file saved with a byte-order mark keeps its first user; an entry whose password is empty
    /// never logs in, and is named by the check that warns of it.
    #[tokio::test]
    async fn a_byte_order_mark_and_empty_passwords() {
        let empty = format!("dave:{}", bcrypt::hash("", 4).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, format!("\u{feff}{ALICE}\n{empty}\n{BOB}\n")).unwrap();
        let h = Htpasswd::load(&path).unwrap();
        assert!(
            h.verify("alice", "secret").await,
            "the first user after the mark"
        );
        assert!(h.verify("bob", "builder").await);
        assert!(!h.verify("dave", "").await, "an empty password is refused");
        assert!(!h.verify("dave", "x").await);
        assert_eq!(users_with_empty_passwords(&h.entries()), ["dave"]);
        // A mark or control character anywhere else in a name is a broken line.
        for bad in [
            format!("{BOB}\n\u{feff}{ALICE}\n"),
            "ca\u{1b}[2Jrol:$2y$04$uXBlXEosibWkICVGh9UHbOUSv9pYf1gBQButjm7hJsqgk7SfzhHgy\n"
                .to_string(),
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(Htpasswd::load(&path).is_err());
        }
    }

    #[test]
    fn a_missing_file_stops_the_start_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let err = Htpasswd::load(&dir.path().join("nope"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("auth.htpasswd.path") && err.contains("htpasswd -cB"),
            "{err}"
        );
    }

    #[test]
    fn a_refused_line_stops_the_start() {
        let (_d, path) = file(&[ALICE, "eve:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="]);
        let err = Htpasswd::load(&path).err().unwrap().to_string();
        assert!(err.contains("line 2") && err.contains("SHA-1"), "{err}");
    }

    #[tokio::test]
    async fn reloads_when_the_file_changes() {
        let (_d, path) = file(&[ALICE]);
        let h = Htpasswd::load_with(&path, Duration::ZERO, DEFAULT_TTL).unwrap();
        assert!(h.verify("alice", "secret").await);
        assert!(!h.verify("carol", "carol-pw").await);

        // alice removed, carol added: the cached success of alice must not outlive her entry.
        std::fs::write(&path, format!("{CAROL}\n")).unwrap();
        assert!(h.verify("carol", "carol-pw").await);
        assert!(!h.verify("alice", "secret").await);

        // A broken edit keeps the last good users.
        std::fs::write(&path, format!("{CAROL}\nmallory:plaintext\n")).unwrap();
        assert!(h.verify("carol", "carol-pw").await);
        assert!(!h.verify("mallory", "plaintext").await);

        // So does a deleted file.
        std::fs::remove_file(&path).unwrap();
        assert!(h.verify("carol", "carol-pw").await);

        // And it is picked up again when it comes back.
        std::fs::write(&path, format!("{BOB}\n")).unwrap();
        assert!(h.verify("bob", "builder").await);
        assert!(!h.verify("carol", "carol-pw").await);
    }

    #[tokio::test]
    async fn does_not_look_before_the_interval() {
        let (_d, path) = file(&[ALICE]);
        let h = Htpasswd::load_with(&path, Duration::from_secs(3600), DEFAULT_TTL).unwrap();
        std::fs::write(&path, format!("{CAROL}\n")).unwrap();
        assert!(!h.verify("carol", "carol-pw").await);
        assert!(h.verify("alice", "secret").await);
        h.reload_if_changed();
        assert!(h.verify("carol", "carol-pw").await);
    }

    #[tokio::test]
    async fn cached_successes_skip_bcrypt() {
        // A high cost makes the difference measurable: cost 12 takes ~200 ms; a cache hit, microseconds.
        let hash = bcrypt::hash("slow", 12).unwrap();
        let line = format!("slow:{hash}");
        let (_d, path) = file(&[&line]);
        let h = Htpasswd::load(&path).unwrap();
        let first = Instant::now();
        assert!(h.verify("slow", "slow").await);
        let uncached = first.elapsed();
        let again = Instant::now();
        for _ in 0..20 {
            assert!(h.verify("slow", "slow").await);
        }
        let cached = again.elapsed();
        assert!(
            cached < uncached,
            "20 cached checks took {cached:?}, one bcrypt {uncached:?}"
        );
    }
}
