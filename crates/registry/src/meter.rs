//! A pass-through stream that hashes and counts an upload's bytes as they flow into the blob store, so the
//! registry learns the new hash state and length without buffering or re-reading anything.
//!
//! The tally is only a candidate: the registry records it (in the upload session) after the blob store has
//! made the bytes durable and the count matches what the client declared. A write that fails leaves the
//! recorded session untouched, and the blob store discards the unrecorded tail on the next write.

use std::io;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use oci::ResumableHasher;

use crate::ByteStream;

/// What went through the stream.
#[derive(Clone, Debug)]
pub(crate) struct Tally {
    /// The hash over the upload's earlier bytes and every chunk that went through.
    pub hasher: ResumableHasher,
    /// Bytes that went through (this request's only).
    pub received: u64,
    /// The body was longer than declared, and the stream was cut short with an error.
    pub overflowed: bool,
}

/// A shared handle on the tally: the stream updates it, the registry reads it once the blob store returned.
///
/// A std `Mutex` rather than an async one: it is held only to hash one chunk, never across an `.await`,
/// and the stream itself is polled by one task at a time, so it is never contended.
#[derive(Clone)]
pub(crate) struct Meter(Arc<Mutex<Tally>>);

impl Meter {
    pub fn new(hasher: ResumableHasher) -> Meter {
        Meter(Arc::new(Mutex::new(Tally {
            hasher,
            received: 0,
            overflowed: false,
        })))
    }

    /// Wraps `body` so every chunk feeds the tally. With `limit`, a body longer than `limit` bytes is cut
    /// off with an error as soon as it overflows, so a lying client cannot make the store write more.
    pub fn wrap(&self, body: ByteStream, limit: Option<u64>) -> ByteStream {
        let tally = Arc::clone(&self.0);
        Box::pin(body.map(move |item| {
            let chunk = item?;
            let mut t = tally
                .lock()
                .map_err(|_| io::Error::other("upload tally lock poisoned"))?;
            let received = t.received + chunk.len() as u64;
            if limit.is_some_and(|l| received > l) {
                t.overflowed = true;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "body longer than declared",
                ));
            }
            t.hasher.update(&chunk);
            t.received = received;
            Ok(chunk)
        }))
    }

    /// The tally so far. `None` only if a panic while hashing poisoned the lock.
    pub fn tally(&self) -> Option<Tally> {
        self.0.lock().ok().map(|t| t.clone())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::{TryStreamExt, stream};
    use oci::{Digest, DigestAlgorithm};

    use super::*;

    fn body(chunks: &[&'static [u8]]) -> ByteStream {
        let items: Vec<io::Result<Bytes>> = chunks.iter().map(|c| Ok(Bytes::from(*c))).collect();
        Box::pin(stream::iter(items))
    }

    #[tokio::test]
    async fn hashes_and_counts_what_flows_through() {
        let meter = Meter::new(ResumableHasher::new(DigestAlgorithm::Sha256));
        let out: Vec<Bytes> = meter
            .wrap(body(&[b"hello ", b"world"]), None)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(out.concat(), b"hello world");
        let t = meter.tally().unwrap();
        assert_eq!(t.received, 11);
        assert!(!t.overflowed);
        assert_eq!(t.hasher.finish(), Digest::sha256_of(b"hello world"));
    }

    #[tokio::test]
    async fn cuts_off_a_body_longer_than_declared() {
        let meter = Meter::new(ResumableHasher::new(DigestAlgorithm::Sha256));
        let res: io::Result<Vec<Bytes>> = meter
            .wrap(body(&[b"1234", b"5678"]), Some(6))
            .try_collect()
            .await;
        assert!(res.is_err());
        let t = meter.tally().unwrap();
        assert!(t.overflowed);
        assert_eq!(t.received, 4, "the overflowing chunk is not counted");
    }
}
