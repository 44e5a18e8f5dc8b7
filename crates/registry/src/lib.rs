//! The registry: every operation of the OCI Distribution Spec, written once over a [`BlobStore`] and the
//! roles of a [`Metadata`], knowing nothing of HTTP or of which backend holds the bytes.
//!
//! The HTTP layer parses requests into `oci` types and calls one method here per endpoint; every outcome
//! is a value or an [`Error`] variant that names the spec's error code.

use std::sync::Arc;

use blobs::BlobStore;
use metadata::Metadata;
use oci::{RepoName, Tag};

pub mod adopt;
mod blob;
mod browse;
pub mod cached;
pub mod clock;
mod discovery;
mod error;
pub mod gc;
mod index_children;
pub mod ingest;
pub mod instrumented;
mod keyed_lock;
mod maintenance;
mod manifest;
mod meter;
pub mod notify;
pub mod oci_layout;
pub mod proxy;
mod pulls;
pub mod quota;
mod reconcile;
pub mod replicate;
mod repo_walk;
pub mod retention;
pub mod scrub;
pub mod spans;
mod upload;
mod upload_limit;

pub use blob::{BlobContent, BlobInfo, ByteRange, ZeroCopy};
pub use blobs::{ByteStream, FileRange, UploadId};
pub use discovery::{
    DEFAULT_CATALOG_PAGE, DEFAULT_TAGS_PAGE, MAX_PAGE, MAX_TAGS_PAGE, Page, Referrers,
};
pub use error::{BoxError, Error, Result};
pub use index_children::{IndexChildren, RequiredPlatform};
pub use maintenance::{PurgeReport, UploadPurging};
pub use manifest::{ManifestContent, PutManifestOutcome};
pub use metadata::{Referrer, RepoUsage, StoreTotals, TagAge};
pub use upload::{Chunk, MountOutcome, UploadStatus};

/// Settings that change what the registry allows.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Whether manifests, tags and blobs may be deleted (registry:2's `storage.delete.enabled`).
    pub delete_enabled: bool,
    /// Read-only mode (registry:2's `storage.maintenance.readonly`): every write is refused with
    /// `Unsupported`, reads keep working.
    pub read_only: bool,
    /// Largest manifest accepted, in bytes (4 MiB as the spec suggests).
    pub max_manifest_bytes: usize,
    /// Most uploads streaming bytes in at once; more are refused with `TooManyRequests`. `None`: no cap.
    pub max_concurrent_uploads: Option<usize>,
    /// Blob GETs are answered with a redirect to the storage (a URL valid this long) when the blob store
    /// offers one (`BlobStore::redirect_url`: S3); `None`, the default, serves every byte itself.
    pub blob_redirect: Option<std::time::Duration>,
    /// Tags that may be created but never moved to another manifest or deleted (`tags.immutable`).
    pub immutable_tags: Vec<ImmutableTags>,
    /// The most blob bytes sets of repositories may store (`quotas`; see [`quota`]).
    pub quotas: Vec<quota::Quota>,
    /// Most tags one page of a tag listing holds, and its size when `n` is absent (registry:3's
    /// `tags.maxtags`; [`MAX_PAGE`] by default, at most [`MAX_TAGS_PAGE`]).
    pub max_tags: usize,
    /// Which children of a pushed index must exist (registry:3's `validation.manifests.indexes`).
    pub index_children: IndexChildren,
}

/// One rule of immutable tags: the tags matching `tags` (every tag when it is empty) of the repositories
/// matching `repositories`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImmutableTags {
    pub repositories: Vec<oci::Pattern>,
    pub tags: Vec<oci::Pattern>,
}

impl ImmutableTags {
    fn covers(&self, repo: &RepoName, tag: &Tag) -> bool {
        self.repositories.iter().any(|p| p.matches(repo.as_str()))
            && (self.tags.is_empty() || self.tags.iter().any(|p| p.matches(tag.as_str())))
    }
}

/// The default cap on uploads in progress: each holds a file and a write buffer of up to 1 MiB, so this
/// bounds that memory near 128 MiB while leaving room for dozens of clients pushing several layers each.
pub const DEFAULT_MAX_CONCURRENT_UPLOADS: usize = 128;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            delete_enabled: false,
            read_only: false,
            max_manifest_bytes: 4 * 1024 * 1024,
            max_concurrent_uploads: Some(DEFAULT_MAX_CONCURRENT_UPLOADS),
            blob_redirect: None,
            immutable_tags: Vec::new(),
            quotas: Vec::new(),
            max_tags: MAX_PAGE,
            index_children: IndexChildren::All,
        }
    }
}

/// The registry. Cheap to clone (clones share everything); holds no global state: its two stores and the
/// locks of uploads in progress live here.
#[derive(Clone)]
pub struct Registry {
    blobs: Arc<dyn BlobStore>,
    meta: Metadata,
    settings: Settings,
    /// Serialises the requests working on one upload (see [`keyed_lock`] for why).
    upload_locks: keyed_lock::KeyedLocks,
    /// Serialises linking a blob whose bytes exist with deleting unlinked bytes (see [`keyed_lock`]).
    blob_locks: keyed_lock::KeyedLocks,
    /// One ingestion per digest at a time in this process (`ingest.rs`), apart from `blob_locks`, which
    /// the upload an ingestion commits takes itself.
    ingest_locks: keyed_lock::KeyedLocks,
    /// Uploads streaming bytes in, and their cap (see [`upload_limit`]).
    upload_slots: upload_limit::UploadSlots,
    /// The pull-through cache, when namespaces are mirrored (see [`proxy`]).
    proxy: Option<Arc<proxy::Proxy>>,
    /// What this process's garbage collections deleted (see [`gc`]).
    gc_totals: Arc<gc::GcTotals>,
    retention_totals: Arc<retention::RetentionTotals>,
    replication_totals: Arc<replicate::ReplicationTotals>,
    adopt_tally: Arc<adopt::AdoptTally>,
    /// registry:2's tree while its adoption may be under way: repositories are adopted ahead for the
    /// requests that name them (see [`adopt`]).
    adoption: Option<Arc<adopt::Pending>>,
    /// Manifest pulls not written yet (see [`pulls`]).
    pulls: Arc<pulls::PullLog>,
    /// The quotas as last measured (see [`quota`]).
    quota_measured: Arc<std::sync::Mutex<Vec<quota::QuotaUsage>>>,
    /// Where events go, when notification endpoints are configured (see [`notify`]).
    notifier: Option<Arc<notify::Notifier>>,
}

impl Registry {
    /// A registry over `blobs` and `meta` (a backend's `Arc`, or a [`Metadata`] whose roles were
    /// decorated).
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        meta: impl Into<Metadata>,
        settings: Settings,
    ) -> Registry {
        Registry {
            blobs,
            meta: meta.into(),
            upload_slots: upload_limit::UploadSlots::new(settings.max_concurrent_uploads),
            settings,
            upload_locks: Default::default(),
            blob_locks: Default::default(),
            ingest_locks: Default::default(),
            proxy: None,
            gc_totals: Default::default(),
            retention_totals: Default::default(),
            replication_totals: Default::default(),
            adopt_tally: Default::default(),
            adoption: None,
            pulls: Default::default(),
            quota_measured: Default::default(),
            notifier: None,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The one rule of read-only mode, checked first by every operation that writes.
    fn writable(&self) -> Result<()> {
        if self.settings.read_only {
            return Err(Error::Unsupported(
                "the registry is in read-only mode (maintenance): pushes and deletes are refused, pulls work"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether `tag` of `repo` is immutable (`Settings::immutable_tags`).
    fn tag_is_immutable(&self, repo: &RepoName, tag: &Tag) -> bool {
        self.settings
            .immutable_tags
            .iter()
            .any(|rule| rule.covers(repo, tag))
    }

    /// How many uploads are streaming bytes in right now (for the metrics).
    pub fn uploads_in_progress(&self) -> usize {
        self.upload_slots.in_use()
    }
}

/// Compile-time check: the HTTP layer runs these futures on a multi-threaded runtime (axum requires
/// `Send` handlers), so a non-`Send` value held across an `.await` must fail the build here, not there.
#[cfg(test)]
#[allow(dead_code)]
fn operations_are_send(reg: &Registry, repo: &oci::RepoName, d: &oci::Digest, r: &oci::Reference) {
    fn send<T: Send>(_: T) {}
    fn shared<T: Send + Sync>(_: &T) {}
    shared(reg);
    let id = UploadId::random();
    let chunk = || Chunk {
        range: None,
        length: None,
        body: Box::pin(futures_util::stream::empty()),
    };
    send(reg.start_upload(repo));
    send(reg.push_blob(repo, d, chunk()));
    send(reg.mount_blob(repo, d, None));
    send(reg.upload_status(repo, &id));
    send(reg.upload_chunk(repo, &id, chunk()));
    send(reg.finish_upload(repo, &id, d, Some(chunk())));
    send(reg.cancel_upload(repo, &id));
    send(reg.stat_blob(repo, d));
    send(reg.get_blob(repo, d, None));
    send(reg.delete_blob(repo, d));
    send(reg.get_manifest(repo, r));
    send(reg.put_manifest(repo, r, None, bytes::Bytes::new()));
    send(reg.delete_manifest(repo, r));
    send(reg.list_tags(repo, &Page::default()));
    send(reg.catalog(&Page::default()));
    send(reg.referrers(repo, d, None));
}
