//! Sealing: what the web interface hands a browser to keep (the session cookie of `ui/session.rs`) is
//! encrypted and authenticated, so the browser can neither read it nor change it, and it carries its own
//! deadline.
//!
//! AES-256-GCM (aws-lc-rs, the library rustls uses here) under a key derived with HKDF-SHA256 from the
//! configuration's `http.secret` ([`Sealer::from_secret`]): every replica configured with the same secret
//! (registry:2 asks for that already) opens what any of them sealed, with nothing shared between them at
//! run time. Without a secret, [`Sealer::random`] makes a key of this process's own: sessions then end
//! with it and do not cross replicas (the binary warns).
//!
//! The sealed form, base64url without padding: `version (1 byte) | nonce (12) | ciphertext | tag (16)`,
//! the plaintext being `deadline (Unix seconds, 8 bytes big-endian) | payload`. The version byte is
//! authenticated too (as associated data). Nonces are random: at 96 bits, collisions stay negligible far
//! past the number of sign-ins a registry sees under one key.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The format's version: a change of format or key derivation gets a new one, and old cookies stop
/// opening (their holders sign in again).
const VERSION: u8 = 1;
/// HKDF's salt and info: what the secret's key is for, so that no other use of `http.secret` can ever
/// derive the same key.
const SALT: &[u8] = b"berth web interface";
const INFO: &[u8] = b"session cookie v1";

/// Seals and opens with one key.
pub struct Sealer {
    /// `None` when no key could be made (no randomness): nothing seals and nothing opens.
    key: Option<LessSafeKey>,
    random: SystemRandom,
}

impl Sealer {
    /// The key every replica with this `http.secret` derives.
    pub fn from_secret(secret: &[u8]) -> Sealer {
        let prk = Salt::new(HKDF_SHA256, SALT).extract(secret);
        let key = prk
            .expand(&[INFO], &AES_256_GCM)
            .map(UnboundKey::from)
            // Unreachable: AES-256's 32 bytes are far below HKDF-SHA256's limit of 8,160.
            .unwrap_or_else(|_| unreachable!("HKDF expands to 32 bytes"));
        Sealer {
            key: Some(LessSafeKey::new(key)),
            random: SystemRandom::new(),
        }
    }

    /// A key of this process's own, from the system's random source.
    pub fn random() -> Sealer {
        let mut secret = [0u8; 32];
        // A key from a random source that failed would be guessable: none, and no sign-in, instead.
        if SystemRandom::new().fill(&mut secret).is_err() {
            tracing::error!(
                "no randomness for the session key: signing in to the web interface fails"
            );
            return Sealer {
                key: None,
                random: SystemRandom::new(),
            };
        }
        Sealer::from_secret(&secret)
    }

    /// `payload`, valid until `deadline` (Unix seconds); `None` without a key or a fresh nonce (a
    /// nonce used twice under one key would give the key away).
    pub fn seal(&self, payload: &[u8], deadline: u64) -> Option<String> {
        let key = self.key.as_ref()?;
        let mut nonce = [0u8; NONCE_LEN];
        if self.random.fill(&mut nonce).is_err() {
            tracing::error!("no randomness for a session's nonce");
            return None;
        }
        let mut data = Vec::with_capacity(8 + payload.len() + AES_256_GCM.tag_len());
        data.extend_from_slice(&deadline.to_be_bytes());
        data.extend_from_slice(payload);
        // Unreachable failure: the input is far below GCM's 64 GiB limit.
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from([VERSION]),
            &mut data,
        )
        .ok()?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + data.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// The payload of `sealed`, if this key sealed it, nobody changed it since, and its deadline is
    /// not before `now` (Unix seconds).
    pub fn open(&self, sealed: &str, now: u64) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let (&version, rest) = raw.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .key
            .as_ref()?
            .open_in_place(nonce, Aad::from([VERSION]), &mut data)
            .ok()?;
        if plain.len() < 8 {
            return None;
        }
        let (deadline, payload) = plain.split_at(8);
        let deadline = u64::from_be_bytes(deadline.try_into().ok()?);
        (deadline >= now).then(|| payload.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn what_is_sealed_opens_with_the_same_secret_until_its_deadline() {
        let a = Sealer::from_secret(b"the replicas' secret");
        let sealed = a.seal(b"payload", NOW + 60).unwrap();
        assert!(!sealed.contains("payload"));
        assert_eq!(a.open(&sealed, NOW).as_deref(), Some(&b"payload"[..]));
        // Another replica with the same secret.
        let b = Sealer::from_secret(b"the replicas' secret");
        assert_eq!(b.open(&sealed, NOW + 60).as_deref(), Some(&b"payload"[..]));
        // Sealing twice gives two different texts (random nonces).
        assert_ne!(a.seal(b"payload", NOW + 60).unwrap(), sealed);
    }

    #[test]
    fn past_its_deadline_nothing_opens() {
        let a = Sealer::from_secret(b"s");
        let sealed = a.seal(b"payload", NOW).unwrap();
        assert!(a.open(&sealed, NOW + 1).is_none());
    }

    #[test]
    fn another_key_opens_nothing() {
        let sealed = Sealer::from_secret(b"one")
            .seal(b"payload", NOW + 60)
            .unwrap();
        assert!(Sealer::from_secret(b"two").open(&sealed, NOW).is_none());
        assert!(Sealer::random().open(&sealed, NOW).is_none());
        let random = Sealer::random();
        let own = random.seal(b"payload", NOW + 60).unwrap();
        assert!(random.open(&own, NOW).is_some());
        assert!(Sealer::random().open(&own, NOW).is_none());
    }

    #[test]
    fn a_changed_byte_anywhere_opens_nothing() {
        let a = Sealer::from_secret(b"s");
        let sealed = a.seal(b"payload", NOW + 60).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..raw.len() {
            let mut changed = raw.clone();
            changed[i] ^= 1;
            assert!(
                a.open(&URL_SAFE_NO_PAD.encode(&changed), NOW).is_none(),
                "byte {i}"
            );
        }
        // Cut short, lengthened, or not base64 at all.
        assert!(a.open(&sealed[..sealed.len() - 1], NOW).is_none());
        assert!(a.open(&format!("{sealed}AA"), NOW).is_none());
        assert!(a.open("not sealed!", NOW).is_none());
        assert!(a.open("", NOW).is_none());
    }
}
