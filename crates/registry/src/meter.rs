//! A pass-through stream that hashes and counts an upload's bytes as they flow into the blob store, so the
//! registry learns the new hash state and length without buffering or re-reading anything.
//!
//! Hashing runs beside the stream rather than in it: SHA-256 is the largest CPU cost of a push, and done
//! in the request's task it would run one after the other with receiving the body. So chunks are passed
//! on to the blob store at once and also gathered into batches of [`HASH_BATCH`] bytes, each hashed on
//! the blocking pool while the task receives the next ones (and the store writes them): receiving,
//! hashing and writing overlap on separate cores. One batch is hashed at a time; a full batch waits for
//! the previous one, which throttles the stream to the hasher's pace, so a meter holds at most about two
//! batches (shared with the store's buffers, never copied) whatever the blob's size.
//!
//! The tally is only a candidate: the registry records it (in the upload session) after the blob store has
//! made the bytes durable and the count matches what the client declared. A write that fails leaves the
//! recorded session untouched, and the blob store discards the unrecorded tail on the next write. A hash
//! that fails (a panic on the blocking pool) loses the tally, so the chunk fails and records nothing either.

use std::io;
use std::mem;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use oci::ResumableHasher;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::ByteStream;

/// Bytes hashed per trip to the blocking pool: large enough that the trip is noise next to the hash
/// (about a millisecond of SHA-256), small enough that two per upload are cheap to hold.
pub(crate) const HASH_BATCH: usize = 1 << 20;

/// A remainder this small is hashed in place at the end rather than sent to the blocking pool: it takes
/// less time than the trip would.
const INLINE_TAIL: usize = 64 << 10;

/// What went through the stream.
#[derive(Clone, Debug)]
pub(crate) struct Tally {
    /// The hash over the upload's earlier bytes and every chunk that went through.
    pub hasher: ResumableHasher,
    /// Bytes that went through (this request's only).
    pub received: u64,
}

/// Where the hasher is.
enum Hashing {
    /// Waiting for the next batch.
    Idle(ResumableHasher),
    /// Hashing a batch on the blocking pool.
    Busy(JoinHandle<ResumableHasher>),
    /// Gone: a batch's hashing panicked, or the tally was already taken.
    Lost,
}

struct Inner {
    hashing: Hashing,
    /// Chunks passed on but not yet handed to the hasher.
    batch: Vec<Bytes>,
    batched: usize,
    received: u64,
    overflowed: bool,
}

impl Inner {
    /// Waits for the batch being hashed, if any.
    ///
    /// Cancel-safe: the handle stays in place while it is awaited, so if the stream is dropped meanwhile
    /// (the client hung up), [`Meter::finish`] still finds the batch and waits for it.
    async fn settle(&mut self) {
        if let Hashing::Busy(handle) = &mut self.hashing {
            self.hashing = match handle.await {
                Ok(hasher) => Hashing::Idle(hasher),
                Err(e) => {
                    tracing::error!(error = %e, "hashing an upload's bytes failed");
                    Hashing::Lost
                }
            };
        }
    }

    /// Hands the gathered chunks to the hasher, once it is done with the previous batch.
    async fn dispatch(&mut self) -> io::Result<()> {
        self.settle().await;
        let Hashing::Idle(mut hasher) = mem::replace(&mut self.hashing, Hashing::Lost) else {
            return Err(io::Error::other("the upload's hash state was lost"));
        };
        let batch = mem::take(&mut self.batch);
        let inline = mem::take(&mut self.batched) <= INLINE_TAIL;
        if inline {
            batch.iter().for_each(|chunk| hasher.update(chunk));
            self.hashing = Hashing::Idle(hasher);
        } else {
            self.hashing = Hashing::Busy(tokio::task::spawn_blocking(move || {
                batch.iter().for_each(|chunk| hasher.update(chunk));
                hasher
            }));
        }
        Ok(())
    }
}

/// A shared handle on the tally: the stream updates it, the registry takes it once the blob store returned.
///
/// An async `Mutex`, held across the wait for a batch: the stream is polled by one task at a time and the
/// registry reads the tally only once the store has dropped the stream, so it is never contended.
#[derive(Clone)]
pub(crate) struct Meter(Arc<Mutex<Inner>>);

impl Meter {
    pub fn new(hasher: ResumableHasher) -> Meter {
        Meter(Arc::new(Mutex::new(Inner {
            hashing: Hashing::Idle(hasher),
            batch: Vec::new(),
            batched: 0,
            received: 0,
            overflowed: false,
        })))
    }

    /// Wraps `body` so every chunk feeds the tally. With `limit`, a body longer than `limit` bytes is cut
    /// off with an error as soon as it overflows, so a lying client cannot make the store write more.
    pub fn wrap(&self, body: ByteStream, limit: Option<u64>) -> ByteStream {
        let inner = Arc::clone(&self.0);
        Box::pin(body.then(move |item| {
            let inner = Arc::clone(&inner);
            async move {
                let chunk = item?;
                let mut t = inner.lock().await;
                let received = t.received + chunk.len() as u64;
                if limit.is_some_and(|l| received > l) {
                    t.overflowed = true;
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "body longer than declared",
                    ));
                }
                t.received = received;
                t.batched += chunk.len();
                t.batch.push(chunk.clone());
                if t.batched >= HASH_BATCH {
                    t.dispatch().await?;
                }
                Ok(chunk)
            }
        }))
    }

    /// Whether the body overflowed its declared length (readable whatever became of the hash).
    pub async fn overflowed(&self) -> bool {
        self.0.lock().await.overflowed
    }

    /// Hashes what is left and takes the tally. `None` if the hash state was lost (a panic while
    /// hashing) or already taken.
    pub async fn finish(&self) -> Option<Tally> {
        let mut t = self.0.lock().await;
        if !t.batch.is_empty() {
            t.dispatch().await.ok()?;
        }
        t.settle().await;
        match mem::replace(&mut t.hashing, Hashing::Lost) {
            Hashing::Idle(hasher) => Some(Tally {
                hasher,
                received: t.received,
            }),
            Hashing::Busy(_) | Hashing::Lost => None,
        }
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
        let t = meter.finish().await.unwrap();
        assert_eq!(t.received, 11);
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
        assert!(meter.overflowed().await);
        let t = meter.finish().await.unwrap();
        assert_eq!(t.received, 4, "the overflowing chunk is not counted");
    }

    /// Deterministic bytes that differ from one position to the next.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn chunked(data: &[u8], size: usize) -> ByteStream {
        let items: Vec<io::Result<Bytes>> = data
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Box::pin(stream::iter(items))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_batches_in_odd_chunks_are_hashed_whole_and_in_order() {
        // A resumed upload: the hasher already holds 1000 bytes; then 3.5 batches arrive in chunks that
        // straddle the batch boundaries.
        let data = pattern(HASH_BATCH * 7 / 2 + 1000);
        let mut earlier = ResumableHasher::new(DigestAlgorithm::Sha256);
        earlier.update(&data[..1000]);
        let meter = Meter::new(earlier);
        let out: Vec<Bytes> = meter
            .wrap(chunked(&data[1000..], 100_003), None)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            out.concat(),
            &data[1000..],
            "the bytes pass through unchanged"
        );
        let t = meter.finish().await.unwrap();
        assert_eq!(t.received, (data.len() - 1000) as u64);
        assert_eq!(t.hasher.len(), data.len() as u64);
        assert_eq!(t.hasher.finish(), Digest::sha256_of(&data));
        assert!(meter.finish().await.is_none(), "the tally is taken once");
    }

    #[tokio::test]
    async fn a_stream_dropped_mid_body_leaves_the_tally_of_what_went_through() {
        let data = pattern(HASH_BATCH * 2 + 10);
        let meter = Meter::new(ResumableHasher::new(DigestAlgorithm::Sha256));
        let mut wrapped = meter.wrap(chunked(&data, HASH_BATCH / 2), None);
        let mut passed = Vec::new();
        for _ in 0..3 {
            passed.extend_from_slice(&wrapped.next().await.unwrap().unwrap());
        }
        drop(wrapped);
        let t = meter.finish().await.unwrap();
        assert_eq!(t.received, passed.len() as u64);
        assert_eq!(t.hasher.finish(), Digest::sha256_of(&passed));
    }

    #[tokio::test]
    async fn a_failed_hash_fails_the_stream_and_loses_the_tally() {
        let meter = Meter::new(ResumableHasher::new(DigestAlgorithm::Sha256));
        // A batch whose hashing panics on the blocking pool.
        meter.0.lock().await.hashing =
            Hashing::Busy(tokio::task::spawn_blocking(|| panic!("hasher failed")));
        let res: io::Result<Vec<Bytes>> = meter
            .wrap(chunked(&pattern(HASH_BATCH * 2), HASH_BATCH), None)
            .try_collect()
            .await;
        assert!(
            res.is_err(),
            "the next batch finds no hash state to continue"
        );
        assert!(
            meter.finish().await.is_none(),
            "so no tally can be recorded"
        );
    }
}
