//! A short-lived memory of credentials that verified, so a `docker pull` of twenty layers pays for bcrypt
//! (50-250 ms of CPU by design) once rather than twenty times.
//!
//! Entries are keyed by a keyed SHA-256 of the user and password, never by the password: the key is random
//! per process, so the map holds nothing an attacker could test guesses against offline, and a lookup's
//! timing depends on a digest, not on the secret. (A hash with a secret prefix is not a MAC against
//! length extension, but nothing here is ever shown to anyone: it only names map entries.)
//!
//! Each entry remembers the generation of the htpasswd file it was verified against; a reload bumps the
//! generation, so a changed or removed password stops working at once, not at the end of the TTL.
//!
//! A std `Mutex`: the critical sections are a hash map operation, never held across an await.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a successful verification is remembered.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Most entries kept; past it, expired ones are dropped, and if that is not enough the map is cleared
/// (costing some bcrypt runs, never correctness).
const MAX_ENTRIES: usize = 4096;

type Key = [u8; 32];

pub struct RecentVerifications {
    secret: [u8; 32],
    ttl: Duration,
    entries: Mutex<HashMap<Key, (Instant, u64)>>,
}

impl RecentVerifications {
    pub fn new(ttl: Duration) -> RecentVerifications {
        // Two v4 UUIDs: 244 random bits from the OS, through a dependency the workspace already has.
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        RecentVerifications {
            secret,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The entry key of a user and password.
    pub fn key(&self, user: &str, password: &str) -> Key {
        let mut h = Sha256::new();
        h.update(self.secret);
        // Lengths first, so that ("ab", "c") and ("a", "bc") differ.
        h.update((user.len() as u64).to_be_bytes());
        h.update(user.as_bytes());
        h.update((password.len() as u64).to_be_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Whether `key` verified against file `generation` less than the TTL ago.
    pub fn hit(&self, key: &Key, generation: u64) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .is_some_and(|&(at, g)| g == generation && at.elapsed() < self.ttl)
    }

    /// Remembers a successful verification.
    pub fn insert(&self, key: Key, generation: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (at, g)| *g == generation && at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), generation));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_generation_and_expires() {
        let cache = RecentVerifications::new(Duration::from_millis(200));
        let k = cache.key("alice", "pw");
        assert!(!cache.hit(&k, 1));
        cache.insert(k, 1);
        assert!(cache.hit(&k, 1));
        assert!(!cache.hit(&k, 2), "a reloaded file invalidates");
        assert!(!cache.hit(&cache.key("alice", "pw2"), 1));
        std::thread::sleep(Duration::from_millis(250));
        assert!(!cache.hit(&k, 1), "expired");
    }

    #[test]
    fn keys_separate_user_and_password() {
        let cache = RecentVerifications::new(DEFAULT_TTL);
        assert_ne!(cache.key("ab", "c"), cache.key("a", "bc"));
        assert_eq!(cache.key("a", "b"), cache.key("a", "b"));
        // Another process (another secret) names the same credentials differently.
        assert_ne!(
            cache.key("a", "b"),
            RecentVerifications::new(DEFAULT_TTL).key("a", "b")
        );
    }

    #[test]
    fn stays_bounded() {
        let cache = RecentVerifications::new(DEFAULT_TTL);
        for i in 0..(MAX_ENTRIES + 10) {
            cache.insert(cache.key(&i.to_string(), "pw"), 1);
        }
        let len = cache.entries.lock().unwrap().len();
        assert!(len <= MAX_ENTRIES, "{len}");
    }
}
