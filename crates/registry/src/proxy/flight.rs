//! One upstream fetch per cached blob, however many clients ask for it at once.
//!
//! The first request for a blob that is not cached starts a *flight*: a task, independent of any
//! client, that fetches the blob from the upstream into a blob-store upload while hashing it, and
//! commits and links it only when the digest checks out. Every request for that repository and digest
//! meanwhile joins the flight and streams its bytes as they arrive.
//!
//! Memory stays bounded whatever the blob and however slow the clients:
//! - the task receives the upstream's bytes and writes them to the upload at once (network and disk
//!   overlap), in segments of [`SEGMENT`] bytes, each readable back from the upload once the blob
//!   store's write returns (not yet durable: the commit makes the blob durable, and an upload of a fetch
//!   is never resumed, so waiting for the disk after each segment would only make clients wait too); the
//!   most recent bytes received (the *window*: all of those not yet written, and as many written ones before them as
//!   fit in [`WINDOW`]) are kept in memory once per flight, shared by every client (`Bytes` are
//!   reference-counted), and receiving pauses while two segments are not yet written;
//! - a client reads from the window when its next bytes are there (a client keeping up with the fetch,
//!   the common case, never reads the disk), and otherwise from storage: the written part of the upload
//!   while the flight runs, the committed blob once it is done. So a slow client never holds the fetch
//!   back (the task never waits for clients, and the window drops its oldest bytes whoever still wants
//!   them) and never makes anything grow: it just reads from disk, one chunk at a time, like any other
//!   blob reader.
//!
//! Never wrong bytes: the last byte of every response (whole blob or range) is held back until the
//! blob's digest and length are verified, so a digest mismatch or a dropped upstream ends every response
//! with an error before it is complete, and the aborted upload leaves nothing in the cache. The last byte
//! goes as soon as the bytes check out, before the commit (fsyncs and the metadata link, tens of
//! milliseconds a blob, which a client pulling layers one after another would otherwise wait for each
//! time): the client has the right bytes whether or not the commit then succeeds, and a blob is visible
//! in the cache once its flight ends, shortly after. Range requests work on a blob still being fetched:
//! they stream from wherever their range is, and finish when the blob is verified.
//!
//! A flight whose upstream sends no `Content-Length` cannot tell clients the size up front: they wait for
//! it to finish and then read the committed blob.
//!
//! A cache whose own storage fails (a full disk, mostly) degrades to not caching, not to serving
//! nothing: when a write to the upload, saving its session or the commit fails, the flight goes on
//! *uncached*. It removes its upload, writes and commits nothing more, and keeps receiving from the
//! upstream into the window, which then drops its oldest bytes beyond [`WINDOW`] although they were never
//! written (memory stays bounded). Its readers still get their bytes from the window, the last one still
//! only once the digest is verified; a reader behind the window has nowhere left to read from and fails
//! (its client retries, and the retry starts a flight of its own: an uncached flight takes no new readers).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::stream;
use oci::{Digest, RepoName};
use tokio::sync::watch;

use super::{Route, client_error};
use crate::clock::unix_now;
use crate::{BlobContent, ByteRange, Error, Registry, Result, UploadId};

mod fetch;
mod reader;

use fetch::Fetch;
use reader::Reader;

/// Bytes written to the upload by one blob-store write (after which they can be read back).
pub(crate) const SEGMENT: u64 = 8 * 1024 * 1024;

/// The most bytes one flight keeps in memory (plus at most one upstream chunk). The bytes not yet
/// written take up to two segments of it; the rest keeps the last written bytes, so that a client
/// behind the fetch (it was sending its previous chunk while a segment was written, or the upstream
/// is faster than it) still reads from memory instead of reading back from disk what was just written.
/// Eight segments: in the proxy benchmark (skopeo pulling from a berth on the same host) the reader of
/// the largest layer was seen (strace) reading the upload back with a 16 or 32 MiB window; a fetch holds at
/// most 64 MiB whatever its readers do.
pub(crate) const WINDOW: u64 = 8 * SEGMENT;

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
    /// Bytes of the upload the blob store has written (readable back from it, not necessarily durable).
    written: u64,
    /// The latest bytes received, in order: everything after `written`, and some written bytes before
    /// (uncached: the last [`WINDOW`] bytes, whatever was written).
    window: VecDeque<Bytes>,
    /// Offset in the blob of the window's first byte; never after `written` unless uncached.
    window_start: u64,
    window_len: u64,
    /// The bytes received are the whole blob and hash to its digest: every byte may go to readers,
    /// though the blob may not be committed yet.
    verified: bool,
    /// The blob is committed to the blob store (it is being recorded and linked): eviction may take it
    /// like any cached blob from here on, as it will once the flight ends.
    stored: bool,
    /// The cache's storage failed: the upload is gone and nothing more is written; the window alone
    /// serves the readers.
    uncached: bool,
    end: Option<End>,
}

#[derive(Clone, Debug)]
enum End {
    /// Verified, committed and linked; the blob's size.
    Committed(u64),
    /// Verified but not cached (the cache's storage failed); the blob's size. The window still serves
    /// the readers it holds.
    Uncached(u64),
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
    /// The cache's own storage failed where the flight could not go on without it.
    Storage {
        /// What failed, for the log.
        why: String,
        /// What a client is told when the registry answers this failure with UNAVAILABLE (a full
        /// disk: "the registry's storage is full", as a push is told), `None` for a 500.
        unavailable: Option<String>,
    },
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
        let reader = Reader::new(
            flight,
            Arc::clone(&self.blobs),
            digest.clone(),
            want.start..want.end,
        );
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

    /// Whether `digest` is being fetched into `repo` right now and not yet stored (so eviction must
    /// leave it alone).
    pub(crate) fn fetching(&self, repo: &RepoName, digest: &Digest) -> bool {
        let Some(proxy) = &self.proxy else {
            return false;
        };
        let map = proxy
            .flights
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(&(repo.clone(), digest.clone())).is_some_and(|f| {
            let s = f.lock();
            s.end.is_none() && !s.stored
        })
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
        // A failed flight stays in the map for a moment after its end; a new request retries. An
        // uncached one may already have dropped the bytes a new reader needs first: a new request
        // starts its own flight (which caches again if space came back).
        if let Some(f) = map.get(&key)
            && f.joinable()
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
            meta: self.meta.clone(),
            observer: Arc::clone(&proxy.observer),
            blob_locks: self.blob_locks.clone(),
        };
        // In the span of the request that started it, so that a trace shows the upstream's request (and
        // the cache's writes) under the pull that caused them.
        tokio::spawn(tracing::Instrument::in_current_span(fetch.run()));
        Ok(flight)
    }
}

impl Flight {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a new reader may join this flight.
    fn joinable(&self) -> bool {
        let s = self.lock();
        !s.uncached && !matches!(s.end, Some(End::Failed(_)))
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
                    Some(End::Committed(size) | End::Uncached(size)) => return Ok(*size),
                    Some(End::Failed(f)) => return Err(f.clone()),
                    None => {}
                }
                if let Some(size) = s.size {
                    return Ok(size);
                }
            }
            if rx.changed().await.is_err() {
                return Err(Failure::internal("flight dropped"));
            }
        }
    }

    /// What a reader at `pos`, wanting bytes up to `end`, can do now.
    fn look(&self, pos: u64, end: u64) -> Look {
        let s = self.lock();
        let cap = match &s.end {
            // Verified: every byte may go, from memory while the window still holds it.
            Some(End::Committed(_) | End::Uncached(_)) => end,
            Some(End::Failed(f)) => return Look::Failed(f.clone()),
            None if s.verified => end,
            // The last byte waits for the verdict on the digest.
            None => end.saturating_sub(1),
        };
        let committed = matches!(s.end, Some(End::Committed(_)));
        if pos >= end && (committed || s.verified) {
            return Look::Done;
        }
        if pos >= cap {
            return if committed {
                Look::Committed
            } else {
                Look::Wait
            };
        }
        if pos < s.window_start {
            return if committed {
                Look::Committed
            } else if s.uncached {
                // Neither written nor in memory any more.
                Look::Behind
            } else {
                // Before the window, so written (the window never starts after `written`): read the
                // upload up to where memory takes over.
                Look::Upload(s.window_start)
            };
        }
        match s.window_slice(pos, cap) {
            Some(b) => Look::Memory(b),
            None if committed => Look::Committed,
            // Ended uncached: every byte received, so the window holds whatever it can give
            // (unreachable, but never wait for a flight that has nothing more to come).
            None if s.end.is_some() => Look::Behind,
            None => Look::Wait,
        }
    }
}

enum Look {
    /// The reader has all it asked for, verified.
    Done,
    /// Read the committed blob.
    Committed,
    Failed(Failure),
    /// The reader is behind the window: read the (written) upload up to here.
    Upload(u64),
    /// The reader's next bytes, from the window.
    Memory(Bytes),
    /// The flight is uncached and the reader behind its window: its next bytes are nowhere.
    Behind,
    Wait,
}

impl State {
    /// Bytes received so far.
    fn received(&self) -> u64 {
        self.window_start + self.window_len
    }

    /// Bytes received and not yet written, which the receiver waits for the writer to bring down;
    /// none once uncached (nothing will be written, and the window's bound holds regardless).
    fn unwritten(&self) -> u64 {
        if self.uncached {
            return 0;
        }
        self.received().saturating_sub(self.written)
    }

    /// Appends a chunk just received, and drops the window's oldest written bytes beyond [`WINDOW`].
    fn push(&mut self, chunk: Bytes) {
        self.window_len += chunk.len() as u64;
        self.window.push_back(chunk);
        self.trim();
    }

    /// Records that the store has written the upload up to `to`.
    fn advance_written(&mut self, to: u64) {
        self.written = self.written.max(to);
        self.trim();
    }

    /// Stops caching: nothing more is written, and the window keeps only the last [`WINDOW`] bytes.
    fn go_uncached(&mut self) {
        self.uncached = true;
        self.trim();
    }

    /// Drops whole chunks from the front of the window while it holds more than [`WINDOW`] bytes, as
    /// long as they are written (readers behind them then read the upload), or whatever they are once
    /// uncached (readers behind them fail). Whole chunks: cutting one would not free its memory anyway
    /// (the others' slices share it).
    fn trim(&mut self) {
        while self.window_len > WINDOW {
            let Some(front) = self.window.front() else {
                break;
            };
            let len = front.len() as u64;
            if !self.uncached && self.window_start + len > self.written {
                break;
            }
            self.window_start += len;
            self.window_len -= len;
            self.window.pop_front();
        }
    }

    /// Drops the whole window (the flight failed: nobody reads it any more).
    fn clear_window(&mut self) {
        self.window_start = self.received();
        self.window_len = 0;
        self.window.clear();
    }

    /// The window's bytes from `pos` up to `cap`, at most one chunk's worth; none if the window does
    /// not hold `pos`.
    fn window_slice(&self, pos: u64, cap: u64) -> Option<Bytes> {
        if pos < self.window_start || pos >= cap {
            return None;
        }
        let mut at = self.window_start;
        for chunk in &self.window {
            let next = at + chunk.len() as u64;
            if pos < next {
                // Within this chunk, which came from a usize.
                let from = (pos - at) as usize;
                let to = (cap.min(next) - at) as usize;
                return Some(chunk.slice(from..to));
            }
            at = next;
        }
        None
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
            Failure::Storage {
                unavailable: Some(message),
                ..
            } => Error::Unavailable(message.clone()),
            Failure::Storage { why, .. } => Error::internal(format!("caching a blob: {why}")),
        }
    }

    /// A storage failure that is a bug, not a condition (a 500).
    fn internal(why: impl Into<String>) -> Failure {
        Failure::Storage {
            why: why.into(),
            unavailable: None,
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
            Failure::Storage { why, .. } => write!(f, "storage: {why}"),
        }
    }
}

/// A failure of the cache's storage, told to clients as the registry tells a push (a full disk is
/// UNAVAILABLE with "the registry's storage is full", never a 500).
fn storage(e: impl Into<Error>) -> Failure {
    match e.into() {
        // The conversion logged the cause; the message says what it means.
        Error::Unavailable(message) => Failure::Storage {
            why: message.clone(),
            unavailable: Some(message),
        },
        e => Failure::internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: usize = 64 * 1024;

    /// Receives `n` bytes into `s` as the fetch does, writing each full segment, and checks
    /// the window's bound after every chunk.
    fn receive(s: &mut State, n: u64) {
        let chunk = Bytes::from(vec![7u8; CHUNK]);
        for _ in 0..n / CHUNK as u64 {
            s.push(chunk.clone());
            if s.received().is_multiple_of(SEGMENT) {
                s.advance_written(s.received());
            }
            assert!(
                s.window_len <= WINDOW + CHUNK as u64,
                "the window holds {} bytes",
                s.window_len
            );
            assert!(s.window_start <= s.written);
        }
    }

    #[test]
    fn the_window_stays_within_its_bound_and_keeps_the_latest_bytes() {
        let mut s = State::default();
        receive(&mut s, 10 * SEGMENT);
        assert_eq!(s.received(), 10 * SEGMENT);
        // Full, and holding the latest bytes.
        assert_eq!(s.window_len, WINDOW);
        assert_eq!(s.window_start, 10 * SEGMENT - WINDOW);
        let b = s.window_slice(s.window_start, u64::MAX).unwrap();
        assert_eq!(b.len(), CHUNK);
        assert!(s.window_slice(s.window_start - 1, u64::MAX).is_none());
    }

    #[test]
    fn bytes_not_yet_written_are_never_dropped() {
        let mut s = State::default();
        let chunk = Bytes::from(vec![1u8; CHUNK]);
        // A disk that wrote nothing yet: the window grows past its bound rather than lose bytes
        // (the receiver's own limit, two segments, is what stops it).
        for _ in 0..(WINDOW / CHUNK as u64 + 4) {
            s.push(chunk.clone());
        }
        assert_eq!(s.window_start, 0);
        assert_eq!(s.unwritten(), s.received());
        s.advance_written(s.received());
        assert!(s.window_len <= WINDOW);
        assert_eq!(s.unwritten(), 0);
    }

    #[test]
    fn a_reader_behind_the_window_reads_the_written_upload_up_to_it() {
        let flight = flight();
        receive(&mut flight.lock(), 12 * SEGMENT);
        let end = 13 * SEGMENT;
        let start = flight.lock().window_start;
        assert!(start > 0, "the window moved on");
        assert!(matches!(flight.look(0, end), Look::Upload(to) if to == start));
        assert!(matches!(flight.look(start, end), Look::Memory(_)));
        assert!(matches!(flight.look(12 * SEGMENT, end), Look::Wait));
    }

    fn flight() -> Flight {
        Flight {
            upload: UploadId::random(),
            state: Mutex::default(),
            changed: watch::channel(0).0,
        }
    }

    #[test]
    fn an_uncached_window_drops_its_oldest_bytes_though_they_were_never_written() {
        let mut s = State::default();
        let chunk = Bytes::from(vec![3u8; CHUNK]);
        // A segment written, then the disk fails with more received: those were never written.
        receive(&mut s, SEGMENT + 3 * CHUNK as u64);
        assert_eq!(s.written, SEGMENT);
        s.go_uncached();
        assert_eq!(s.unwritten(), 0, "the receiver waits for no writer");
        for _ in 0..(2 * WINDOW / CHUNK as u64) {
            s.push(chunk.clone());
            assert!(s.window_len <= WINDOW, "the window holds {}", s.window_len);
        }
        assert_eq!(s.window_len, WINDOW, "full, with the latest bytes");
        assert_eq!(s.window_start, s.received() - WINDOW);
        assert!(s.window_start > s.written, "dropped bytes never written");
        assert!(s.window_slice(s.received() - 1, s.received()).is_some());
    }

    #[test]
    fn readers_in_an_uncached_window_are_served_and_readers_behind_it_fail() {
        let flight = flight();
        let size = 12 * SEGMENT;
        {
            let mut s = flight.lock();
            s.size = Some(size);
            receive(&mut s, 2 * SEGMENT);
            s.go_uncached();
            let chunk = Bytes::from(vec![5u8; CHUNK]);
            while s.received() < size {
                s.push(chunk.clone());
            }
        }
        let start = flight.lock().window_start;
        assert_eq!(start, size - WINDOW);
        // Behind the window: not the upload (it is gone), a failure.
        assert!(matches!(flight.look(0, size), Look::Behind));
        assert!(matches!(flight.look(start - 1, size), Look::Behind));
        assert!(matches!(flight.look(start, size), Look::Memory(_)));
        // The last byte still waits for the digest.
        assert!(matches!(flight.look(size - 1, size), Look::Wait));
        assert!(matches!(flight.look(size - 2, size), Look::Memory(b) if b.len() == 1));
        // Verified, and the fetch over (the window stays for its readers).
        flight.update(|s| {
            s.verified = true;
            s.end = Some(End::Uncached(size));
        });
        assert!(matches!(flight.look(size - 1, size), Look::Memory(b) if b.len() == 1));
        assert!(matches!(flight.look(size, size), Look::Done));
        assert!(matches!(flight.look(0, size), Look::Behind));
        assert!(
            !flight.joinable(),
            "an uncached flight takes no new readers"
        );
    }

    #[test]
    fn a_full_disk_is_unavailable_and_says_so_and_other_failures_are_internal() {
        let digest: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
        let full = || std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left");
        for f in [
            storage(blobs::Error::Io(full())),
            storage(metadata::Error::Full(Box::new(full()))),
        ] {
            match f.to_error(&digest) {
                Error::Unavailable(m) => assert!(m.contains("storage is full"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        let broken = storage(blobs::Error::Io(std::io::Error::other("disk on fire")));
        assert!(matches!(broken.to_error(&digest), Error::Internal(_)));
    }
}
