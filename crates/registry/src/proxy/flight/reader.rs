//! One client's read of a flight: from the in-memory window, the written part of the upload, or the
//! committed blob, whichever holds its next bytes; the last byte only once the blob's bytes are verified.

use std::io;
use std::sync::Arc;

use blobs::BlobStore;
use bytes::Bytes;
use futures_util::StreamExt;
use oci::Digest;
use tokio::sync::watch;

use super::{Flight, Look};
use crate::ByteStream;

/// One client's view of a flight: a position and where its next bytes come from.
pub(super) struct Reader {
    flight: Arc<Flight>,
    rx: watch::Receiver<u64>,
    blobs: Arc<dyn BlobStore>,
    digest: Digest,
    pos: u64,
    end: u64,
    source: Option<Source>,
    done: bool,
}

/// A stream the reader follows: part of the upload, or (verified) the committed blob.
struct Source {
    stream: ByteStream,
    verified: bool,
}

impl Reader {
    /// A reader of bytes `range` of the flight's blob.
    pub(super) fn new(
        flight: Arc<Flight>,
        blobs: Arc<dyn BlobStore>,
        digest: Digest,
        range: std::ops::Range<u64>,
    ) -> Reader {
        Reader {
            rx: flight.changed.subscribe(),
            flight,
            blobs,
            digest,
            pos: range.start,
            end: range.end,
            source: None,
            done: false,
        }
    }

    pub(super) async fn next(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(src) = &mut self.source {
                match src.stream.next().await {
                    Some(Ok(mut b)) => {
                        let cap = if src.verified {
                            self.end
                        } else {
                            self.end.saturating_sub(1)
                        };
                        let room = cap.saturating_sub(self.pos);
                        if b.is_empty() {
                            continue;
                        }
                        if room == 0 {
                            self.source = None;
                            continue;
                        }
                        if b.len() as u64 > room {
                            b.truncate(room as usize);
                            self.source = None;
                        }
                        self.pos += b.len() as u64;
                        return Some(Ok(b));
                    }
                    Some(Err(e)) => {
                        let verified = src.verified;
                        self.source = None;
                        if verified {
                            self.done = true;
                            return Some(Err(e));
                        }
                        // An upload read can lose the race with the commit that moves the upload away
                        // (the committed blob has the same bytes) or with a failure: the flight's end
                        // says which.
                        if !self.wait_for_end_or_change().await {
                            return self.fail("flight dropped".into());
                        }
                    }
                    // Committed, done or not: the next look tells.
                    None => self.source = None,
                }
            }
            self.rx.borrow_and_update();
            match self.flight.look(self.pos, self.end) {
                Look::Done => {
                    self.done = true;
                    return None;
                }
                Look::Committed => {
                    if self.pos >= self.end {
                        self.done = true;
                        return None;
                    }
                    match self
                        .blobs
                        .read(&self.digest, Some(self.pos..self.end))
                        .await
                    {
                        Ok(Some(r)) => {
                            self.source = Some(Source {
                                stream: r.body,
                                verified: true,
                            })
                        }
                        Ok(None) => return self.fail("the cached blob vanished".into()),
                        Err(e) => return self.fail(e.to_string()),
                    }
                }
                Look::Failed(f) => return self.fail(f.to_string()),
                Look::Upload(len) => {
                    match self
                        .blobs
                        .upload_read_from(&self.flight.upload, self.pos, len)
                        .await
                    {
                        Ok(stream) => {
                            self.source = Some(Source {
                                stream,
                                verified: false,
                            })
                        }
                        // Committed (or failed) in the meantime, or about to be: the flight's end
                        // says which.
                        Err(_) => {
                            if !self.wait_for_end_or_change().await {
                                return self.fail("flight dropped".into());
                            }
                        }
                    }
                }
                Look::Memory(b) => {
                    self.pos += b.len() as u64;
                    return Some(Ok(b));
                }
                Look::Behind => {
                    return self.fail(
                        "the cache's storage failed, and this client fell behind the bytes the \
                         fetch still holds in memory"
                            .into(),
                    );
                }
                Look::Wait => {
                    // The flight owns the sender, and this reader owns the flight: never closed.
                    if self.rx.changed().await.is_err() {
                        return self.fail("flight dropped".into());
                    }
                }
            }
        }
    }

    /// Returns at once if the flight has ended, else after its next change; false only if the flight
    /// is gone, which its owner prevents.
    async fn wait_for_end_or_change(&mut self) -> bool {
        self.rx.borrow_and_update();
        if self.flight.lock().end.is_some() {
            return true;
        }
        self.rx.changed().await.is_ok()
    }

    fn fail(&mut self, why: String) -> Option<io::Result<Bytes>> {
        self.done = true;
        Some(Err(io::Error::other(format!(
            "fetching {} from the upstream failed: {why}",
            self.digest
        ))))
    }
}
