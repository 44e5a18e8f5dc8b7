//! The task of one flight: fetch from the upstream, write the upload segment by segment while hashing
//! and publishing the bytes to the readers, verify, commit, link, record; or abort and leave nothing.
//! Should the cache's storage fail on the way, the fetch goes on uncached (see `super`'s comment).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};

use blobs::BlobStore;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use metadata::{Metadata, ProxyEntry, ProxyEntryKind, UploadSession};
use oci::ResumableHasher;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{End, Failure, Flight, Flights, Key, SEGMENT, State, UpstreamKind, storage, unix_now};

/// Most bytes received and not yet written, per fetch: two segments, so the receiver can fill one
/// while the writer writes the other. Within the flight's [`super::WINDOW`].
const TAIL_LIMIT: u64 = 2 * SEGMENT;
/// Chunks in flight between the receiver and the writer (their bytes are in the window already).
const CHANNEL_CHUNKS: usize = 64;
use crate::ByteStream;
use crate::gc;
use crate::keyed_lock::KeyedLocks;
use crate::proxy::{
    CacheEvent, CacheKind, CacheObserver, Route, UpstreamCall, UpstreamOutcome, outcome,
};

/// The task of one flight.
pub(super) struct Fetch {
    pub(super) flight: Arc<Flight>,
    pub(super) flights: Flights,
    pub(super) key: Key,
    pub(super) route: Route,
    pub(super) blobs: Arc<dyn BlobStore>,
    pub(super) meta: Metadata,
    pub(super) observer: Arc<dyn CacheObserver>,
    /// The registry's blob locks: held from finding the bytes present (or publishing them) to linking
    /// them, so eviction cannot delete them in between (see `crate::keyed_lock`).
    pub(super) blob_locks: KeyedLocks,
}

impl Fetch {
    pub(super) async fn run(self) {
        // Should this task stop without reaching its end (a panic, the runtime shutting down), the
        // readers waiting on the flight get an error instead of waiting forever.
        let _guard = EndGuard(Arc::clone(&self.flight));
        let (repo, digest) = (&self.key.0, &self.key.1);
        let mut save = None;
        let end = match self.fetch(&mut save).await {
            Ok(Delivered::Committed(size)) => End::Committed(size),
            Ok(Delivered::Uncached(size)) => {
                // Removed when the fetch went uncached; again in case that failed.
                if let Err(e) = self.blobs.upload_delete(&self.flight.upload).await {
                    tracing::warn!(%digest, error = %e, "removing an uncached fetch's upload failed");
                }
                End::Uncached(size)
            }
            Err(f) => {
                tracing::warn!(upstream = self.route.upstream.name(), %repo, %digest, failure = %f, "pull-through blob fetch failed; nothing cached");
                if let Err(e) = self.blobs.upload_delete(&self.flight.upload).await {
                    tracing::warn!(%digest, error = %e, "removing an aborted cache fetch's upload failed");
                }
                End::Failed(f)
            }
        };
        // The session is deleted only once its save is over, so that a save still running cannot
        // bring it back after the delete.
        if let Some(save) = save
            && save.await.is_err()
        {
            tracing::warn!(%digest, "saving a cache fetch's upload session panicked");
        }
        if let Err(e) = self
            .meta
            .uploads
            .delete_upload(self.flight.upload.as_str())
            .await
        {
            tracing::warn!(%digest, error = %e, "removing a cache fetch's upload session failed");
        }
        self.flight.update(|s| {
            if let End::Committed(size) = &end {
                s.size = Some(*size);
            }
            // A committed or uncached flight's window still serves its readers (the flight goes when
            // they do); a failed one has nothing to serve.
            if matches!(end, End::Failed(_)) {
                s.clear_window();
            }
            s.end = Some(end);
        });
        let mut map = self
            .flights
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            map.remove(&self.key);
        }
    }

    fn observe(&self, e: CacheEvent) {
        self.observer.event(e);
    }

    /// Goes on without the cache's storage, which just failed with `why`: the window alone serves the
    /// readers from here on, and the upload is removed at once (on a full disk, its bytes are space
    /// that other fetches and pushes want). Called once per flight.
    async fn go_uncached(&self, why: &Failure) {
        let (repo, digest) = (&self.key.0, &self.key.1);
        tracing::warn!(upstream = self.route.upstream.name(), %repo, %digest, failure = %why, "the cache's storage failed; serving the blob from the upstream without caching it");
        self.observe(CacheEvent::Uncached);
        self.flight.update(State::go_uncached);
        if let Err(e) = self.blobs.upload_delete(&self.flight.upload).await {
            tracing::warn!(%digest, error = %e, "removing an uncached fetch's upload failed");
        }
    }

    /// Records the blob as cached, for eviction and so that the garbage collector leaves it alone; a
    /// failure is logged (the blob is served regardless, and fetched again should a sweep take it).
    /// Called before the blob is linked, so that whoever sees it linked finds it recorded too. Eviction
    /// skips the entry while the flight runs, and would find nothing linked to remove if the link failed.
    async fn record(&self, size: u64) {
        let (repo, digest) = (&self.key.0, &self.key.1);
        let entry = ProxyEntry {
            repo: repo.clone(),
            digest: digest.clone(),
            kind: ProxyEntryKind::Blob,
            size,
            pulled_at: unix_now(),
        };
        if let Err(e) = self.meta.proxy_entries.touch_proxy_entries(&[entry]).await {
            tracing::warn!(%repo, %digest, error = %e, "recording a cached blob for eviction failed");
        }
    }

    /// Starts saving the fetch's upload session, so that the upload purger removes the bytes should this
    /// process die mid-fetch, on a task of its own: the database's commit (an fsync, tens of
    /// milliseconds while the disk is busy) then delays only the first write to the upload, which waits
    /// for its outcome (see [`Saved`]), not the upstream's answer nor the first bytes the readers get
    /// from memory.
    fn start_save(&self) -> (JoinHandle<()>, Saved) {
        let (repo, digest) = (&self.key.0, &self.key.1);
        let now = unix_now();
        let session = UploadSession {
            id: self.flight.upload.as_str().to_string(),
            repo: repo.clone(),
            offset: 0,
            hash_state: ResumableHasher::new(digest.algorithm()).to_bytes(),
            started_at: now,
            updated_at: now,
        };
        let uploads = Arc::clone(&self.meta.uploads);
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(async move {
            // A fresh random id: nothing to lose a compare-and-swap to.
            let result = uploads
                .save_upload(&session, None)
                .await
                .map(|_| ())
                .map_err(storage);
            tx.send_replace(Some(result));
        });
        (task, Saved(rx))
    }

    /// Fetches, verifies, commits and links the blob (or, the storage failing, only fetches and
    /// verifies it); returns its size.
    ///
    /// `save` gets the task saving the upload session, once there is one: the caller deletes the session
    /// after that task is over.
    async fn fetch(&self, save: &mut Option<JoinHandle<()>>) -> Result<Delivered, Failure> {
        let (repo, digest) = (&self.key.0, &self.key.1);
        // An earlier flight may have linked it between this requester's miss and this flight's start.
        if let Some(size) = self
            .meta
            .catalog
            .linked_blob(repo, digest)
            .await
            .map_err(storage)?
        {
            return Ok(Delivered::Committed(size));
        }
        self.observe(CacheEvent::Miss(CacheKind::Blob));
        // The session is saved while the upstream answers and the readers get the first bytes: no
        // database commit in series before them. Whatever the answer, `run` deletes the session at
        // the end.
        let (task, saved) = self.start_save();
        *save = Some(task);
        let answer = self
            .route
            .upstream
            .blob_get(&self.route.remote, digest)
            .await;
        let blob = match answer {
            Ok(Some(blob)) => blob,
            Ok(None) => {
                self.observe(CacheEvent::Upstream(
                    UpstreamCall::BlobGet,
                    UpstreamOutcome::NotFound,
                ));
                return Err(Failure::NotFound);
            }
            Err(e) => {
                self.observe(CacheEvent::Upstream(UpstreamCall::BlobGet, outcome(&e)));
                return Err(Failure::Upstream(UpstreamKind::of(&e)));
            }
        };
        // The bytes are already here (pushed or cached through another repository): the upstream has
        // just confirmed this repository may read them, which is all that was missing.
        let held = self.blob_locks.lock_digest(digest).await;
        // Not knowing (the storage failing) is not knowing they are here: the fetch goes on, uncached
        // if the storage fails again.
        let present = self.present(digest).await.unwrap_or_else(|f| {
            tracing::warn!(%repo, %digest, failure = %f, "looking for a blob's bytes in the cache failed; fetching them");
            None
        });
        if let Some(size) = present {
            drop(blob.body);
            self.observe(CacheEvent::Upstream(
                UpstreamCall::BlobGet,
                UpstreamOutcome::Ok,
            ));
            self.flight.update(|s| s.stored = true);
            self.record(size).await;
            self.link(size).await;
            return Ok(Delivered::Committed(size));
        }
        drop(held);
        self.flight.update(|s| s.size = blob.size);
        let result = self.stream_into_upload(blob.body, blob.size, saved).await;
        self.observe(CacheEvent::Upstream(
            UpstreamCall::BlobGet,
            match &result {
                Ok(_) => UpstreamOutcome::Ok,
                Err(Failure::Invalid(_)) => UpstreamOutcome::Invalid,
                Err(Failure::Aborted(_)) => UpstreamOutcome::Aborted,
                // Our own storage failed, not the upstream: its answer was fine so far.
                Err(_) => UpstreamOutcome::Ok,
            },
        ));
        let size = match result? {
            Streamed::Written(size) => size,
            Streamed::Uncached(size) => return Ok(Delivered::Uncached(size)),
        };
        let _blob = self.blob_locks.lock_digest(digest).await;
        if let Err(f) = self.commit(size).await {
            // The readers have every byte, verified, in the window or behind it; only those behind it
            // lose their source now.
            self.go_uncached(&f).await;
            return Ok(Delivered::Uncached(size));
        }
        self.flight.update(|s| s.stored = true);
        self.record(size).await;
        self.link(size).await;
        Ok(Delivered::Committed(size))
    }

    /// Makes the upload the blob. The caller holds the digest's lock.
    async fn commit(&self, size: u64) -> Result<(), Failure> {
        let digest = &self.key.1;
        // Reserved before the bytes become visible, so no sweep claims them before the link (see
        // `crate::gc`).
        gc::reserve(&*self.meta.gc, digest, size)
            .await
            .map_err(storage)?;
        self.blobs
            .upload_commit(&self.flight.upload, size, digest)
            .await
            .map_err(storage)
    }

    /// Links the blob, which is in the blob store, to the cached repository. A failure is logged, not
    /// the flight's: its readers read the blob from the store, and the next request for it finds the
    /// bytes there and links them (see [`Fetch::present`]).
    async fn link(&self, size: u64) {
        let (repo, digest) = (&self.key.0, &self.key.1);
        if let Err(e) = self.meta.catalog.link_blob(repo, digest, size).await {
            tracing::warn!(%repo, %digest, error = %e, "linking a cached blob failed; the next request for it links it");
        }
    }

    /// The size of `digest`'s bytes if they are here, reserved against the garbage collector (see
    /// `crate::gc`) before being relied on: found, reserved, then found again, since a sweep may have
    /// deleted them between the first look and the reservation. The caller holds the digest's lock.
    async fn present(&self, digest: &oci::Digest) -> Result<Option<u64>, Failure> {
        let Some(size) = self.blobs.stat(digest).await.map_err(storage)? else {
            return Ok(None);
        };
        gc::reserve(&*self.meta.gc, digest, size)
            .await
            .map_err(storage)?;
        self.blobs.stat(digest).await.map_err(storage)
    }

    /// Streams the upstream's body into the upload while hashing it and sharing each chunk with the
    /// readers; returns the verified length, and whether the upload holds it all or the fetch went
    /// uncached.
    ///
    /// Two halves run at once, so the network and the disk overlap: the *receiver* takes the upstream's
    /// chunks, hashes them, appends them to the flight's window and passes them on; the *writer* writes
    /// them to the upload a segment at a time, each written before the window may drop it. The
    /// receiver waits while [`TAIL_LIMIT`] bytes are not yet written, which bounds the memory of a fetch whatever the
    /// disk's speed.
    async fn stream_into_upload(
        &self,
        body: ByteStream,
        declared: Option<u64>,
        saved: Saved,
    ) -> Result<Streamed, Failure> {
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
        let (received, written) =
            tokio::try_join!(self.receive(body, declared, tx), self.write(rx, saved))?;
        match written {
            None => Ok(Streamed::Uncached(received)),
            Some(written) if written == received => Ok(Streamed::Written(written)),
            Some(written) => Err(Failure::internal(format!(
                "the store holds {written} bytes of {received} received"
            ))),
        }
    }

    /// The receiving half: returns how many bytes came, once they all came and hash to the digest.
    async fn receive(
        &self,
        mut body: ByteStream,
        declared: Option<u64>,
        tx: mpsc::Sender<io::Result<Bytes>>,
    ) -> Result<u64, Failure> {
        let digest = &self.key.1;
        let mut hasher = ResumableHasher::new(digest.algorithm());
        let mut received = 0u64;
        let mut changed = self.flight.changed.subscribe();
        loop {
            // Backpressure: the writer writes the window's bytes to the upload.
            loop {
                changed.borrow_and_update();
                if self.flight.lock().unwritten() < TAIL_LIMIT {
                    break;
                }
                if changed.changed().await.is_err() {
                    return Err(Failure::internal("flight dropped"));
                }
            }
            let chunk = match body.next().await {
                None => break,
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => return Err(Failure::Aborted(e.to_string())),
            };
            received += chunk.len() as u64;
            if declared.is_some_and(|d| received > d) {
                return Err(Failure::Invalid(format!(
                    "the upstream sent more than the {declared:?} bytes it declared"
                )));
            }
            if chunk.is_empty() {
                continue;
            }
            // Readers and the writer get the chunk before it is hashed, so that hashing overlaps with
            // sending it to clients and writing it; the last byte still waits for every byte's hash.
            self.flight.update(|s| s.push(chunk.clone()));
            if tx.send(Ok(chunk.clone())).await.is_err() {
                // The writer stopped (it takes every chunk until the end, uncached or not): its error
                // is the one to report.
                return Ok(received);
            }
            hasher.update(&chunk);
        }
        if declared.is_some_and(|d| d != received) {
            return Err(Failure::Invalid(format!(
                "the upstream sent {received} bytes of a blob it declared as {declared:?}"
            )));
        }
        let actual = hasher.finish();
        if actual != *digest {
            return Err(Failure::Invalid(format!(
                "the upstream's bytes hash to {actual}"
            )));
        }
        // Every byte received is in the window or written, and right: readers may finish now rather
        // than after the commit.
        self.flight.update(|s| s.verified = true);
        Ok(received)
    }

    /// The writing half: once the upload session is saved, writes what the receiver passes on,
    /// [`SEGMENT`] bytes per blob-store write (unsynced: the commit makes the blob durable), and
    /// returns the upload's length once the receiver is done; `None` if the storage failed on the way
    /// and the fetch went uncached (the rest of the chunks are then taken and dropped: they are in the
    /// window already).
    async fn write(
        &self,
        rx: mpsc::Receiver<io::Result<Bytes>>,
        saved: Saved,
    ) -> Result<Option<u64>, Failure> {
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        // No byte reaches the upload before its session exists (the purger's only way to it).
        let outcome = match saved.wait().await {
            Ok(()) => self.write_segments(&rx).await?,
            Err(f) => Err(f),
        };
        let failed = match outcome {
            Ok(len) => return Ok(Some(len)),
            Err(f) => f,
        };
        self.go_uncached(&failed).await;
        // The segment that failed is dropped with its write: nobody else holds the lock.
        let mut rx = rx.lock().await;
        while rx.recv().await.is_some() {}
        Ok(None)
    }

    /// Writes segments until the receiver is done (`Ok(Ok(length))`) or the storage fails
    /// (`Ok(Err(that failure))`).
    async fn write_segments(
        &self,
        rx: &Arc<tokio::sync::Mutex<mpsc::Receiver<io::Result<Bytes>>>>,
    ) -> Result<Result<u64, Failure>, Failure> {
        let mut offset = 0;
        loop {
            let done = Arc::new(AtomicBool::new(false));
            let segment = segment(Arc::clone(rx), Arc::clone(&done));
            match self
                .blobs
                .upload_write_unsynced(&self.flight.upload, offset, segment)
                .await
            {
                Ok(len) => offset = len,
                Err(blobs::Error::Source(e)) => return Err(Failure::Aborted(e.to_string())),
                Err(e) => return Ok(Err(storage(e))),
            }
            self.flight.update(|s| s.advance_written(offset));
            if done.load(Ordering::Acquire) {
                return Ok(Ok(offset));
            }
        }
    }
}

/// How a fetch that got its blob, verified, ended.
enum Delivered {
    /// Committed (linked, unless that failed); its size.
    Committed(u64),
    /// Served to its readers without being cached; its size.
    Uncached(u64),
}

/// How the upstream's body went.
enum Streamed {
    /// All in the upload, verified; its size.
    Written(u64),
    /// Verified, but the fetch went uncached on the way; its size.
    Uncached(u64),
}

/// The outcome of saving a fetch's upload session, once known.
struct Saved(watch::Receiver<Option<Result<(), Failure>>>);

impl Saved {
    async fn wait(mut self) -> Result<(), Failure> {
        match self.0.wait_for(Option::is_some).await {
            Ok(outcome) => match outcome.as_ref() {
                Some(Err(f)) => Err(f.clone()),
                _ => Ok(()),
            },
            // The saving task ended without an outcome: it panicked.
            Err(_) => Err(Failure::internal("saving the upload session stopped")),
        }
    }
}

/// Ends its flight as failed when dropped before the flight ended.
struct EndGuard(Arc<Flight>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        if self.0.lock().end.is_none() {
            self.0.update(|s| {
                s.end = Some(End::Failed(Failure::internal(
                    "the fetch stopped before its end",
                )))
            });
        }
    }
}

/// The next up to [`SEGMENT`] bytes the receiver passes on; sets `done` when the receiver has finished.
fn segment(
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<io::Result<Bytes>>>>,
    done: Arc<AtomicBool>,
) -> ByteStream {
    Box::pin(stream::unfold(0u64, move |taken| {
        let (rx, done) = (Arc::clone(&rx), Arc::clone(&done));
        async move {
            if taken >= SEGMENT {
                return None;
            }
            match rx.lock().await.recv().await {
                None => {
                    done.store(true, Ordering::Release);
                    None
                }
                Some(item) => {
                    let len = item.as_ref().map_or(0, |b| b.len() as u64);
                    Some((item, taken + len))
                }
            }
        }
    }))
}
