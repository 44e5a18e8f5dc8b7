//! What the registry knows about its content: repositories, which blobs each may read, manifests, tags,
//! referrers, upload sessions, job locks and the pull-through cache's entries.
//!
//! The store is split by role, each a small trait with its contract and its own shared suite in
//! `testsuite` (feature `testsuite`):
//!
//! | role | what | suite |
//! | --- | --- | --- |
//! | [`Catalog`] | repositories, blob links, manifests, tags, referrers | `catalog_tests!` |
//! | [`UploadSessions`] | uploads in progress and their hash state | `upload_session_tests!` |
//! | [`JobLocks`] | background work on one replica at a time | `job_lock_tests!` |
//! | [`ProxyEntries`] | what the pull-through cache holds, for eviction | `proxy_entry_tests!` |
//! | [`GcMarks`] | which blobs nothing references, since when, and which a sweep is deleting | `gc_mark_tests!` |
//! | [`ScrubProgress`] | where a stopped scrub continues | `scrub_progress_tests!` |
//! | [`TagAges`] | when tags were pushed and their manifests pulled (retention) | `tag_age_tests!` |
//! | [`Usage`] | bytes per repository and per set of repositories (quotas, usage report) | `usage_tests!` |
//! | [`CatalogChanges`] | what any writer moved or removed, after commit (cache invalidation) | `catalog_change_tests!` |
//! | [`Outbox`] | events waiting for their notification endpoints | `outbox_tests!` |
//! | [`AdoptProgress`] | how far the adoption of a registry:2 tree got | `adopt_progress_tests!` |
//!
//! Every method is one atomic domain operation (one transaction), so the registry never has to hold a
//! lock across calls: tag moves, manifest puts with their reference checks, and upload progress are each
//! all-or-nothing. Backends ([`sqlite`] for one node, [`postgres`] shared by replicas, over the same
//! portable schema) implement every role; a decorator implements only the roles it changes and is put in
//! their place in the [`Metadata`] the registry holds, so there is nothing it could forget to forward.

use std::sync::Arc;

use oci::Digest;

pub use adopt_progress::{AdoptCursor, AdoptProgress, AdoptedAhead};
pub use catalog::{Catalog, NewManifest, Referrer, StoredManifest};
pub use changes::{CatalogChange, CatalogChanges, ChangeStream};
pub use gc_marks::{GcMarks, RecordedBlob};
pub use job_lock::{JobLock, JobLocks, LockHolder};
pub use outbox::{NewEvent, Outbox, QueuedEvent};
pub use proxy_entries::{ProxyEntries, ProxyEntry, ProxyEntryKind};
pub use scrub_progress::{ScrubCursor, ScrubProgress};
pub use tag_ages::{ManifestPull, TagAge, TagAges};
pub use uploads::{UploadSession, UploadSessions};
pub use usage::{RepoUsage, StoreTotals, Usage};

mod adopt_progress;
mod catalog;
mod changes;
mod gc_marks;
mod job_lock;
pub mod outbox;
pub mod postgres;
mod proxy_entries;
mod rows;
pub mod schema;
mod scrub_progress;
pub mod sqlite;
mod tag_ages;
#[cfg(any(test, feature = "testsuite"))]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code, built into the library for other crates' tests: a panic is a failed case"
)]
pub mod testsuite;
mod uploads;
mod usage;

/// The metadata as the registry holds it: one handle per role. A backend fills every field with itself
/// ([`Metadata::of`]); a decorator replaces the fields of the roles it changes and keeps the others.
#[derive(Clone)]
pub struct Metadata {
    pub catalog: Arc<dyn Catalog>,
    pub uploads: Arc<dyn UploadSessions>,
    pub jobs: Arc<dyn JobLocks>,
    pub proxy_entries: Arc<dyn ProxyEntries>,
    pub gc: Arc<dyn GcMarks>,
    pub scrub: Arc<dyn ScrubProgress>,
    pub tag_ages: Arc<dyn TagAges>,
    pub usage: Arc<dyn Usage>,
    pub changes: Arc<dyn CatalogChanges>,
    pub outbox: Arc<dyn Outbox>,
    pub adopt: Arc<dyn AdoptProgress>,
}

/// Every role: what a backend implements.
pub trait Store:
    Catalog
    + UploadSessions
    + JobLocks
    + ProxyEntries
    + GcMarks
    + ScrubProgress
    + TagAges
    + Usage
    + CatalogChanges
    + Outbox
    + AdoptProgress
{
}

impl<S> Store for S where
    S: Catalog
        + UploadSessions
        + JobLocks
        + ProxyEntries
        + GcMarks
        + ScrubProgress
        + TagAges
        + Usage
        + CatalogChanges
        + Outbox
        + AdoptProgress
{
}

impl Metadata {
    /// Every role served by one store.
    pub fn of<S: Store>(store: Arc<S>) -> Metadata {
        Metadata {
            catalog: store.clone(),
            uploads: store.clone(),
            jobs: store.clone(),
            proxy_entries: store.clone(),
            gc: store.clone(),
            scrub: store.clone(),
            tag_ages: store.clone(),
            usage: store.clone(),
            changes: store.clone(),
            outbox: store.clone(),
            adopt: store,
        }
    }
}

impl<S: Store> From<Arc<S>> for Metadata {
    fn from(store: Arc<S>) -> Metadata {
        Metadata::of(store)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `put_manifest`: this blob is not linked to the repository.
    #[error("blob {0} is not in the repository")]
    MissingBlob(Digest),
    /// `link_blob`: a sweep claimed this blob and is deleting its bytes (see [`GcMarks`]).
    #[error("blob {0} is being deleted by the garbage collector")]
    BlobDeleting(Digest),
    /// `put_manifest`: the tag is immutable and points at another manifest.
    #[error("tag {0} is immutable")]
    TagImmutable(oci::Tag),
    /// `put_manifest`: this child manifest does not exist in the repository.
    #[error("manifest {0} is not in the repository")]
    MissingManifest(Digest),
    /// Stored data could not be decoded (a bug or a tampered database).
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// The database cannot be reached right now (connection refused or lost, pool exhausted past its
    /// timeout, server shutting down). Nothing was written; the caller may retry later.
    #[error("metadata backend unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database's disk is full: nothing was written; the same write may succeed once space is freed.
    #[error("metadata storage full: {0}")]
    Full(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database failed.
    #[error("metadata backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
