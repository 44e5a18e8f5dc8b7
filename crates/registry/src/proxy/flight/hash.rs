//! A fetch's digest computed on a thread of the blocking pool, beside the receiving.
//!
//! Why: hashing is the largest CPU cost of a fetch (about a millisecond per MiB here). Done in the fetch's
//! task, it delays the readers that task wakes (tokio runs a woken task on the waker's worker, after the
//! waker yields), so every chunk reached the clients only after it was hashed. Here the receiver hands the
//! chunks over (reference-counted, never copied) in batches of [`BATCH`] bytes and goes on receiving and
//! publishing while another core hashes them.
//!
//! Memory stays bounded: at most [`QUEUED`] batches wait for the hasher, then the receiver waits too (its
//! pace becomes the hasher's, as it was when it hashed in place). The chunks waiting are the latest
//! received, which the flight's window holds anyway, so the queue adds references, not memory.

use bytes::Bytes;
use oci::{Digest, DigestAlgorithm, ResumableHasher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bytes gathered before they go to the hasher: large enough that the trip (a thread wake-up) is noise
/// next to the hash (about a millisecond), small enough that the clients' last byte, which waits for the
/// hash of every byte, does not wait long.
const BATCH: usize = 1 << 20;

/// Batches waiting for the hasher before the receiver waits for it: at the end of a fetch the hash is
/// at most this many batches (and the one being hashed) behind the last byte received.
const QUEUED: usize = 4;

/// The hash of a fetch's bytes, computed on the blocking pool.
pub(super) struct Hasher {
    tx: mpsc::Sender<Vec<Bytes>>,
    task: JoinHandle<ResumableHasher>,
    batch: Vec<Bytes>,
    batched: usize,
}

/// The hasher's thread stopped (a panic): the fetch cannot verify its bytes.
#[derive(Debug, thiserror::Error)]
#[error("the fetch's hasher stopped")]
pub(super) struct HasherGone;

impl Hasher {
    pub(super) fn start(algorithm: DigestAlgorithm) -> Hasher {
        let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(QUEUED);
        let task = tokio::task::spawn_blocking(move || {
            let mut hasher = ResumableHasher::new(algorithm);
            while let Some(batch) = rx.blocking_recv() {
                batch.iter().for_each(|chunk| hasher.update(chunk));
            }
            hasher
        });
        Hasher {
            tx,
            task,
            batch: Vec::new(),
            batched: 0,
        }
    }

    /// Adds `chunk` to the bytes to hash; waits only when the hasher is [`QUEUED`] batches behind.
    pub(super) async fn update(&mut self, chunk: Bytes) -> Result<(), HasherGone> {
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= BATCH {
            self.batched = 0;
            let batch = std::mem::take(&mut self.batch);
            self.tx.send(batch).await.map_err(|_| HasherGone)?;
        }
        Ok(())
    }

    /// The digest of every byte given to [`Hasher::update`].
    pub(super) async fn finish(self) -> Result<Digest, HasherGone> {
        let Hasher {
            tx, task, batch, ..
        } = self;
        if !batch.is_empty() {
            tx.send(batch).await.map_err(|_| HasherGone)?;
        }
        drop(tx);
        let hasher = task.await.map_err(|_| HasherGone)?;
        Ok(hasher.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_every_byte_in_order_across_batches() {
        // Chunks of several sizes, some batches full and a partial one at the end.
        let data: Vec<u8> = (0..(3 * BATCH + 12_345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut h = Hasher::start(DigestAlgorithm::Sha256);
        let mut at = 0;
        for (i, size) in [1, 100_000, BATCH, 3, 700_000].iter().cycle().enumerate() {
            if at >= data.len() {
                break;
            }
            let end = (at + size + i).min(data.len());
            h.update(Bytes::copy_from_slice(&data[at..end]))
                .await
                .unwrap();
            at = end;
        }
        assert_eq!(h.finish().await.unwrap(), Digest::sha256_of(&data));
    }

    #[tokio::test]
    async fn nothing_hashed_is_the_empty_digest() {
        let h = Hasher::start(DigestAlgorithm::Sha256);
        assert_eq!(h.finish().await.unwrap(), Digest::sha256_of(b""));
    }
}
