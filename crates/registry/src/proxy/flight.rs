//! One upstream fetch per cached blob, however many clients ask for it at once.
//!
//! The first request for a blob that is not cached starts a *flight*: a task, independent of any
//! client, that fetches the blob from the upstream into a blob-store upload while hashing it, and
//! commits and links it only when the digest checks out. Every request for that repository and digest
//! meanwhile joins the flight and streams its bytes as they arrive.
//!
//! Memory stays bounded whatever the blob and however slow the clients:
//! - the task writes the upload in segments of [`SEGMENT`] bytes; after each one the blob store has made
//!   those bytes durable, and only the segment being written (the *tail*) is kept in memory, once per
//!   flight, shared by every client (`Bytes` are reference-counted);
//! - a client reads from the tail when it is there, and otherwise from storage: the durable part of the
//!   upload while the flight runs, the committed blob once it is done. So a slow client never holds the
//!   fetch back (the task never waits for clients) and never makes anything grow: it just reads from
//!   disk, one chunk at a time, like any other blob reader.
//!
//! Never wrong bytes: the last byte of every response (whole blob or range) is held back until the blob
//! is committed, so a digest mismatch or a dropped upstream ends every response with an error before it
//! is complete, and the aborted upload leaves nothing in the cache. Range requests work on a blob still
//! being fetched: they stream from wherever their range is, and finish when the blob is verified.
//!
//! A flight whose upstream sends no `Content-Length` cannot tell clients the size up front: they wait for
//! it to finish and then read the committed blob.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use blobs::BlobStore;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use metadata::{CacheEntry, CacheEntryKind, MetadataStore, UploadSession};
use oci::{Digest, RepoName, ResumableHasher};
use tokio::sync::watch;

use super::{
    CacheEvent, CacheKind, CacheObserver, Route, UpstreamCall, UpstreamOutcome, client_error,
    outcome,
};
use crate::{BlobContent, ByteRange, ByteStream, Error, Registry, Result, UploadId};

/// Bytes written to the upload between two durability points: the most one flight keeps in memory.
pub(crate) const SEGMENT: u64 = 8 * 1024 * 1024;

type Key = (RepoName, Digest);

/// The flights of one registry, by local repository and digest. A flight is keyed by repository, not by
/// digest alone, so that a client of one repository never gets bytes its upstream did not confirm for
/// that repository.
#[derive(Clone, Default)]
pub(crate) struct Flights(Arc<Mutex<HashMap<Key, Arc<Flight>>>>);

/// One blob being fetched.
pub(crate) struct Flight {
    upload: UploadId,
    state: Mutex<State>,
    /// Bumped on every change of `state`, to wake the clients waiting for one.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// The upstream's Content-Length, once it answered.
    size: Option<u64>,
    /// Bytes of the upload the blob store has made durable.
    durable: u64,
    /// The bytes received after `durable`, in order.
    tail: VecDeque<Bytes>,
    tail_len: u64,
    end: Option<End>,
}

#[derive(Clone, Debug)]
enum End {
    /// Verified, committed and linked; the blob's size.
    Committed(u64),
    Failed(Failure),
}

/// Why a flight failed; each requester maps it to its own error.
#[derive(Clone, Debug)]
enum Failure {
    NotFound,
    Upstream(UpstreamKind),
    /// The bytes did not match the digest or the declared length.
    Invalid(String),
    /// The upstream's body broke off.
    Aborted(String),
    /// The cache's own storage failed.
    Storage(String),
}

/// An upstream error, kept without its text (which names hosts) so it can be shared.
#[derive(Clone, Copy, Debug)]
enum UpstreamKind {
    RateLimited,
    Denied,
    Unavailable,
    Protocol,
}

impl Registry {
    /// GET of a blob of a cached repository that is not cached yet: joins (or starts) its flight.
    pub(crate) async fn fetch_blob(
        &self,
        route: &Route,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobContent> {
        let flight = self.flight(route, digest)?;
        let size = flight.wait_size().await.map_err(|f| f.to_error(digest))?;
        let range = range.map(|r| r.resolve(size)).transpose()?;
        let want = range.clone().unwrap_or(0..size);
        let reader = Reader {
            rx: flight.changed.subscribe(),
            flight,
            blobs: Arc::clone(&self.blobs),
            digest: digest.clone(),
            pos: want.start,
            end: want.end,
            source: None,
            done: false,
        };
        let body = stream::unfold(reader, |mut r| async move {
            let item = r.next().await?;
            Some((item, r))
        });
        Ok(BlobContent {
            digest: digest.clone(),
            size,
            range,
            body: Box::pin(body),
        })
    }

    /// HEAD of a blob of a cached repository that is not cached yet: the upstream's size. This starts
    /// the fetch (the client asks because it is about to GET the blob).
    pub(crate) async fn fetch_blob_size(&self, route: &Route, digest: &Digest) -> Result<u64> {
        let flight = self.flight(route, digest)?;
        flight.wait_size().await.map_err(|f| f.to_error(digest))
    }

    /// Whether `digest` is being fetched into `repo` right now.
    pub(crate) fn fetching(&self, repo: &RepoName, digest: &Digest) -> bool {
        let Some(proxy) = &self.proxy else {
            return false;
        };
        let map = proxy
            .flights
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(&(repo.clone(), digest.clone()))
            .is_some_and(|f| f.lock().end.is_none())
    }

    /// The flight of `digest` into `route.local`, started if there is none.
    fn flight(&self, route: &Route, digest: &Digest) -> Result<Arc<Flight>> {
        let Some(proxy) = &self.proxy else {
            return Err(Error::internal("fetch_blob without a proxy"));
        };
        let key = (route.local.clone(), digest.clone());
        let mut map = proxy
            .flights
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A failed flight stays in the map for a moment after its end; a new request retries.
        if let Some(f) = map.get(&key)
            && !matches!(f.lock().end, Some(End::Failed(_)))
        {
            return Ok(Arc::clone(f));
        }
        let flight = Arc::new(Flight {
            upload: UploadId::random(),
            state: Mutex::default(),
            changed: watch::channel(0).0,
        });
        map.insert(key.clone(), Arc::clone(&flight));
        drop(map);
        let fetch = Fetch {
            flight: Arc::clone(&flight),
            flights: proxy.flights.clone(),
            key,
            route: route.clone(),
            blobs: Arc::clone(&self.blobs),
            meta: Arc::clone(&self.meta),
            observer: Arc::clone(&proxy.observer),
            records: proxy.records,
        };
        tokio::spawn(fetch.run());
        Ok(flight)
    }
}

impl Flight {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Waits until the blob's size is known: the upstream's Content-Length, or the end of the flight.
    async fn wait_size(&self) -> Result<u64, Failure> {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let s = self.lock();
                match &s.end {
                    Some(End::Committed(size)) => return Ok(*size),
                    Some(End::Failed(f)) => return Err(f.clone()),
                    None => {}
                }
                if let Some(size) = s.size {
                    return Ok(size);
                }
            }
            if rx.changed().await.is_err() {
                return Err(Failure::Storage("flight dropped".into()));
            }
        }
    }

    /// What a reader at `pos`, wanting bytes up to `end`, can do now.
    fn look(&self, pos: u64, end: u64) -> Look {
        let s = self.lock();
        match &s.end {
            Some(End::Committed(_)) => return Look::Committed,
            Some(End::Failed(f)) => return Look::Failed(f.clone()),
            None => {}
        }
        // The last byte waits for the verdict on the digest.
        let cap = end.saturating_sub(1);
        if pos >= cap {
            return Look::Wait;
        }
        if pos < s.durable {
            return Look::Durable(s.durable);
        }
        let mut at = s.durable;
        for chunk in &s.tail {
            let next = at + chunk.len() as u64;
            if pos < next {
                // Within this chunk, which came from a usize.
                let from = (pos - at) as usize;
                let to = (cap.min(next) - at) as usize;
                return Look::Tail(chunk.slice(from..to));
            }
            at = next;
        }
        Look::Wait
    }
}

enum Look {
    Committed,
    Failed(Failure),
    /// The reader is behind what the store made durable: read the upload up to here.
    Durable(u64),
    Tail(Bytes),
    Wait,
}

/// One client's view of a flight: a position and where its next bytes come from.
struct Reader {
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
    /// Leading bytes still to drop (an upload is read from its start).
    skip: u64,
    verified: bool,
}

impl Reader {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(src) = &mut self.source {
                match src.stream.next().await {
                    Some(Ok(mut b)) => {
                        let n = src.skip.min(b.len() as u64);
                        src.skip -= n;
                        // n is at most the chunk's length, a usize.
                        b = b.slice(n as usize..);
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
                                skip: 0,
                                verified: true,
                            })
                        }
                        Ok(None) => return self.fail("the cached blob vanished".into()),
                        Err(e) => return self.fail(e.to_string()),
                    }
                }
                Look::Failed(f) => return self.fail(f.to_string()),
                Look::Durable(len) => {
                    match self.blobs.upload_read(&self.flight.upload, len).await {
                        Ok(stream) => {
                            self.source = Some(Source {
                                stream,
                                skip: self.pos,
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
                Look::Tail(b) => {
                    self.pos += b.len() as u64;
                    return Some(Ok(b));
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

/// The task of one flight.
struct Fetch {
    flight: Arc<Flight>,
    flights: Flights,
    key: Key,
    route: Route,
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetadataStore>,
    observer: Arc<dyn CacheObserver>,
    /// Whether cached content is recorded for eviction.
    records: bool,
}

impl Fetch {
    async fn run(self) {
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

impl State {
    /// Drops the tail's bytes the store has now made durable.
    fn advance_durable(&mut self, to: u64) {
        while self.durable < to {
            let Some(front) = self.tail.front_mut() else {
                break;
            };
            let len = front.len() as u64;
            if self.durable + len <= to {
                self.durable += len;
                self.tail_len -= len;
                self.tail.pop_front();
            } else {
                // Less than the chunk's length, a usize.
                let cut = (to - self.durable) as usize;
                *front = front.slice(cut..);
                self.tail_len -= cut as u64;
                self.durable = to;
            }
        }
        self.durable = self.durable.max(to);
    }
}

impl UpstreamKind {
    fn of(e: &super::UpstreamError) -> UpstreamKind {
        match e {
            super::UpstreamError::RateLimited { .. } => UpstreamKind::RateLimited,
            super::UpstreamError::Denied(_) => UpstreamKind::Denied,
            super::UpstreamError::Unavailable(_) => UpstreamKind::Unavailable,
            super::UpstreamError::Protocol(_) => UpstreamKind::Protocol,
        }
    }
}

impl Failure {
    fn to_error(&self, digest: &Digest) -> Error {
        use super::UpstreamError as U;
        match self {
            Failure::NotFound => Error::BlobUnknown(digest.clone()),
            Failure::Upstream(k) => client_error(&match k {
                UpstreamKind::RateLimited => U::RateLimited { retry_after: None },
                UpstreamKind::Denied => U::Denied(String::new()),
                UpstreamKind::Unavailable => U::Unavailable(String::new()),
                UpstreamKind::Protocol => U::Protocol(String::new()),
            }),
            Failure::Invalid(_) | Failure::Aborted(_) => {
                Error::Unavailable("the upstream registry's transfer of the blob failed".into())
            }
            Failure::Storage(e) => Error::internal(format!("caching a blob: {e}")),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotFound => f.write_str("not found upstream"),
            Failure::Upstream(k) => write!(f, "upstream: {k:?}"),
            Failure::Invalid(why) => write!(f, "invalid content: {why}"),
            Failure::Aborted(why) => write!(f, "transfer broke off: {why}"),
            Failure::Storage(why) => write!(f, "storage: {why}"),
        }
    }
}

fn storage(e: impl std::fmt::Display) -> Failure {
    Failure::Storage(e.to_string())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
