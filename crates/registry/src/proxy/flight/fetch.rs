//! The task of one flight: fetch from the upstream, write the upload segment by segment while hashing
//! and publishing the bytes to the readers, verify, commit, link, record; or abort and leave nothing.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use blobs::BlobStore;
use futures_util::{StreamExt, stream};
use metadata::{CacheEntry, CacheEntryKind, MetadataStore, UploadSession};
use oci::ResumableHasher;

use super::{End, Failure, Flight, Flights, Key, SEGMENT, UpstreamKind, storage, unix_now};
use crate::ByteStream;
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
    pub(super) meta: Arc<dyn MetadataStore>,
    pub(super) observer: Arc<dyn CacheObserver>,
    /// Whether cached content is recorded for eviction.
    pub(super) records: bool,
}

impl Fetch {
    pub(super) async fn run(self) {
        // Should this task stop without reaching its end (a panic, the runtime shutting down), the
        // readers waiting on the flight get an error instead of waiting forever.
        let _guard = EndGuard(Arc::clone(&self.flight));
        let (repo, digest) = (&self.key.0, &self.key.1);
        let end = match self.fetch().await {
            Ok(size) => {
                self.record(size).await;
                End::Committed(size)
            }
            Err(f) => {
                tracing::warn!(upstream = self.route.upstream.name(), %repo, %digest, failure = %f, "pull-through blob fetch failed; nothing cached");
                if let Err(e) = self.blobs.upload_delete(&self.flight.upload).await {
                    tracing::warn!(%digest, error = %e, "removing an aborted cache fetch's upload failed");
                }
                End::Failed(f)
            }
        };
        if let Err(e) = self.meta.delete_upload(self.flight.upload.as_str()).await {
            tracing::warn!(%digest, error = %e, "removing a cache fetch's upload session failed");
        }
        self.flight.update(|s| {
            if let End::Committed(size) = &end {
                s.size = Some(*size);
            }
            s.tail.clear();
            s.tail_len = 0;
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

    /// Records the blob as cached, for eviction; a failure is logged (the blob is served regardless).
    async fn record(&self, size: u64) {
        if !self.records {
            return;
        }
        let (repo, digest) = (&self.key.0, &self.key.1);
        let entry = CacheEntry {
            repo: repo.clone(),
            digest: digest.clone(),
            kind: CacheEntryKind::Blob,
            size,
            pulled_at: unix_now(),
        };
        if let Err(e) = self.meta.touch_cache_entries(&[entry]).await {
            tracing::warn!(%repo, %digest, error = %e, "recording a cached blob for eviction failed");
        }
    }

    /// Fetches, verifies, commits and links the blob; returns its size.
    async fn fetch(&self) -> Result<u64, Failure> {
        let (repo, digest) = (&self.key.0, &self.key.1);
        // An earlier flight may have linked it between this requester's miss and this flight's start.
        if let Some(size) = self.meta.linked_blob(repo, digest).await.map_err(storage)? {
            return Ok(size);
        }
        self.observe(CacheEvent::Miss(CacheKind::Blob));
        let blob = match self
            .route
            .upstream
            .blob_get(&self.route.remote, digest)
            .await
        {
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
        if let Some(size) = self.blobs.stat(digest).await.map_err(storage)? {
            drop(blob.body);
            self.observe(CacheEvent::Upstream(
                UpstreamCall::BlobGet,
                UpstreamOutcome::Ok,
            ));
            self.meta
                .link_blob(repo, digest, size)
                .await
                .map_err(storage)?;
            return Ok(size);
        }
        self.flight.update(|s| s.size = blob.size);
        let now = unix_now();
        // A session, so that the upload purger removes the bytes should this process die mid-fetch.
        let session = UploadSession {
            id: self.flight.upload.as_str().to_string(),
            repo: repo.clone(),
            offset: 0,
            hash_state: ResumableHasher::new(digest.algorithm()).to_bytes(),
            started_at: now,
            updated_at: now,
        };
        self.meta
            .save_upload(&session, None)
            .await
            .map_err(storage)?;
        let result = self.stream_into_upload(blob.body, blob.size).await;
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
        let size = result?;
        self.blobs
            .upload_commit(&self.flight.upload, size, digest)
            .await
            .map_err(storage)?;
        self.meta
            .link_blob(repo, digest, size)
            .await
            .map_err(storage)?;
        Ok(size)
    }

    /// Writes the upstream's body into the upload segment by segment, hashing it and sharing each chunk
    /// with the readers; returns the verified length.
    async fn stream_into_upload(
        &self,
        body: ByteStream,
        declared: Option<u64>,
    ) -> Result<u64, Failure> {
        let digest = &self.key.1;
        let shared = Arc::new(tokio::sync::Mutex::new(body));
        let progress = Arc::new(Mutex::new(Progress {
            hasher: ResumableHasher::new(digest.algorithm()),
            received: 0,
            eof: false,
        }));
        let mut offset = 0;
        loop {
            let segment = segment(
                Arc::clone(&shared),
                Arc::clone(&progress),
                Arc::clone(&self.flight),
                declared,
            );
            match self
                .blobs
                .upload_write(&self.flight.upload, offset, segment)
                .await
            {
                Ok(len) => offset = len,
                Err(blobs::Error::Source(e)) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(Failure::Invalid(e.to_string()));
                }
                Err(blobs::Error::Source(e)) => return Err(Failure::Aborted(e.to_string())),
                Err(e) => return Err(storage(e)),
            }
            self.flight.update(|s| s.advance_durable(offset));
            let p = progress.lock().unwrap_or_else(PoisonError::into_inner);
            if p.received != offset {
                return Err(Failure::Storage(format!(
                    "the store holds {offset} bytes of {} received",
                    p.received
                )));
            }
            if p.eof {
                if declared.is_some_and(|d| d != p.received) {
                    return Err(Failure::Invalid(format!(
                        "the upstream sent {} bytes of a blob it declared as {declared:?}",
                        p.received
                    )));
                }
                let actual = p.hasher.finish();
                if actual != *digest {
                    return Err(Failure::Invalid(format!(
                        "the upstream's bytes hash to {actual}"
                    )));
                }
                return Ok(offset);
            }
        }
    }
}

/// Ends its flight as failed when dropped before the flight ended.
struct EndGuard(Arc<Flight>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        if self.0.lock().end.is_none() {
            self.0.update(|s| {
                s.end = Some(End::Failed(Failure::Storage(
                    "the fetch stopped before its end".into(),
                )))
            });
        }
    }
}

/// The hash and count over what the upstream sent so far.
struct Progress {
    hasher: ResumableHasher,
    received: u64,
    eof: bool,
}

/// The next up to [`SEGMENT`] bytes of `body`, hashed and published to the flight's tail as they pass.
fn segment(
    body: Arc<tokio::sync::Mutex<ByteStream>>,
    progress: Arc<Mutex<Progress>>,
    flight: Arc<Flight>,
    declared: Option<u64>,
) -> ByteStream {
    Box::pin(stream::unfold(0u64, move |taken| {
        let (body, progress, flight) = (
            Arc::clone(&body),
            Arc::clone(&progress),
            Arc::clone(&flight),
        );
        async move {
            if taken >= SEGMENT {
                return None;
            }
            let item = body.lock().await.next().await;
            let mut p = progress.lock().unwrap_or_else(PoisonError::into_inner);
            match item {
                None => {
                    p.eof = true;
                    None
                }
                // The store stops at the first error, so the state after it does not matter.
                Some(Err(e)) => Some((Err(e), SEGMENT)),
                Some(Ok(chunk)) => {
                    let received = p.received + chunk.len() as u64;
                    if declared.is_some_and(|d| received > d) {
                        let e = io::Error::new(io::ErrorKind::InvalidData, "longer than declared");
                        return Some((Err(e), SEGMENT));
                    }
                    p.hasher.update(&chunk);
                    p.received = received;
                    drop(p);
                    if !chunk.is_empty() {
                        flight.update(|s| {
                            s.tail_len += chunk.len() as u64;
                            s.tail.push_back(chunk.clone());
                        });
                    }
                    Some((Ok(chunk.clone()), taken + chunk.len() as u64))
                }
            }
        }
    }))
}
