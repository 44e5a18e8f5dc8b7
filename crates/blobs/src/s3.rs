//! The S3 backend: blobs and uploads as objects in one bucket of any S3-compatible store (AWS S3,
//! Garage, MinIO, Ceph RGW), so that several stateless replicas can share them.
//!
//! The whole layout, the only place it is drawn (keys are built in `s3/keys.rs`):
//!
//! ```text
//! <bucket>/<rootdirectory>/
//! ├── blobs/                              committed blobs, as on the filesystem
//! │   └── sha256/
//! │       └── e3/
//! │           └── e3b0c442...b855         appears only whole: CopyObject or CompleteMultipartUpload
//! │                                       (incomplete multipart uploads here are crashed commits,
//! │                                        aborted by age by purge_temporary)
//! ├── quarantine/
//! │   └── sha256-e3b0...b855              blobs whose bytes failed verification (scrub --repair)
//! └── uploads/
//!     └── <upload id>/
//!         └── <chunk size>/
//!             ├── 00001                   part objects: the bytes of the upload so far, each full
//!             ├── 00002                   (see s3/parts.rs for the sizes) but perhaps the last
//!             └── 00003
//! ```
//!
//! No SDK: S3 is a handful of signed HTTP requests (`s3/sign.rs`, `s3/client.rs`, `s3/api.rs`) over the
//! hyper client and rustls the workspace already has. What each file does:
//! `settings` (what is configured, and AWS's environment variables), `keys` (the layout), `parts` (part
//! sizes that grow past 5,000 parts so that blobs up to S3's 5 TiB limit fit in 10,000 parts),
//! `upload` (upload state, writes, reads back), `commit` (the only place a blob becomes visible),
//! `read` (stat, ranged reads, delete), `list` (committed blobs in digest order), `maintenance`
//! (purging, health), `registry2` (registry:2's tree under the same prefix, read only: see
//! `crate::registry2`).
//!
//! Several replicas may share a bucket: no state is kept in memory between calls, and an upload's state
//! is found by listing its id's prefix, so a PATCH on one replica continues where a PATCH on another
//! stopped. Nothing relies on S3's conditional writes (Garage does not enforce them): blobs are
//! content-addressed, so two commits of one digest write the same bytes, and which write of an upload
//! counts is decided by the registry's compare-and-swap on the offset in the metadata store.
//!
//! One limit of that: S3 has no lock, so a write that lost that race on another replica (its client
//! gave up and retried elsewhere while it still ran) can still replace part objects after the winner
//! wrote them. Clients resend the same bytes at the same offsets, so in practice the bytes are the
//! same; the filesystem backend's per-upload lock has no S3 counterpart.

mod api;
mod client;
mod commit;
mod keys;
mod list;
mod maintenance;
mod parts;
mod read;
mod registry2;
mod settings;
mod sign;
#[cfg(any(test, feature = "testsuite"))]
pub mod testing;
mod time;
mod upload;
mod xml;

/// The readers of S3's answers (the XML scanner, the listing timestamps), for the fuzz targets
/// (`fuzz/fuzz_targets/s3_xml.rs`), which cannot reach a private module. Not an API: thin wrappers.
#[doc(hidden)]
pub mod fuzzing {
    use std::time::SystemTime;

    pub fn blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
        super::xml::blocks(xml, tag)
    }

    pub fn text(xml: &str, tag: &str) -> Option<String> {
        super::xml::text(xml, tag)
    }

    pub fn unescape(s: &str) -> String {
        super::xml::unescape(s)
    }

    pub fn escape(s: &str) -> String {
        super::xml::escape(s)
    }

    pub fn parse_iso8601(s: &str) -> Option<SystemTime> {
        super::time::parse_iso8601(s)
    }

    /// `t` as UTC (year, month, day, hour, minute, second), by the SigV4 dates' conversion.
    pub fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
        let u = super::time::Utc::from_system(t);
        (u.year, u.month, u.day, u.hour, u.minute, u.second)
    }
}

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oci::Digest;

use self::api::Bucket;
use self::keys::Keys;
use crate::{BlobReader, BlobStore, ByteStream, ListedBlob, Result, UploadId};

pub use self::registry2::S3Registry2Tree;
pub use self::settings::{DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, S3Config, S3Settings, SettingsError};

/// The largest blob the S3 backend stores with part size `chunk_size` (see `s3/parts.rs`): S3's 5 TiB
/// object limit, or a little less at the smallest part size.
pub fn max_blob_size(chunk_size: u64) -> u64 {
    parts::PartLayout::new(chunk_size).max_len()
}

/// A [`BlobStore`] on an S3 bucket. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct S3BlobStore {
    bucket: Arc<Bucket>,
    keys: Keys,
    /// Part size of the uploads this store starts.
    chunk: u64,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("root", &self.keys.root())
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

impl S3BlobStore {
    /// A store on the bucket `settings` name. Sends nothing: [`BlobStore::check`] tells whether the
    /// bucket answers.
    pub fn open(settings: &S3Settings) -> io::Result<S3BlobStore> {
        let bucket =
            Bucket::new(settings).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(S3BlobStore {
            bucket: Arc::new(bucket),
            keys: Keys::new(&settings.root),
            chunk: settings.chunk_size,
        })
    }

    /// A URL that lets anyone GET the blob `digest` straight from the bucket for `expires` (a SigV4
    /// presigned URL). Computed locally: it does not check that the blob exists.
    pub fn presigned_url(&self, digest: &Digest, expires: Duration) -> String {
        self.bucket
            .client()
            .presigned_get(&self.keys.blob(digest), expires)
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        self.stat_blob(digest).await
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<Option<BlobReader>> {
        self.read_blob(digest, range).await
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        self.delete_blob(digest).await
    }

    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<ListedBlob>> {
        self.list_page(after, limit).await
    }

    async fn quarantine(&self, digest: &Digest) -> Result<bool> {
        self.quarantine_blob(digest).await
    }

    async fn upload_write(&self, id: &UploadId, offset: u64, data: ByteStream) -> Result<u64> {
        self.write(id, offset, data).await
    }

    /// Every part written is durable already: the same as `upload_write`.
    async fn upload_write_unsynced(
        &self,
        id: &UploadId,
        offset: u64,
        data: ByteStream,
    ) -> Result<u64> {
        self.write(id, offset, data).await
    }

    /// `UploadNotFound` also when the upload holds fewer than `len` bytes, as in `upload_commit`.
    async fn upload_read(&self, id: &UploadId, len: u64) -> Result<ByteStream> {
        self.read_upload(id, len).await
    }

    /// Read from the start, the first `from` bytes dropped: the parts are read in order anyway.
    async fn upload_read_from(&self, id: &UploadId, from: u64, len: u64) -> Result<ByteStream> {
        Ok(crate::skip_bytes(self.read_upload(id, len).await?, from))
    }

    async fn upload_commit(&self, id: &UploadId, len: u64, digest: &Digest) -> Result<()> {
        self.commit(id, len, digest).await
    }

    async fn upload_delete(&self, id: &UploadId) -> Result<()> {
        self.delete_upload(id).await
    }

    async fn purge_temporary(&self, older_than: SystemTime, dry_run: bool) -> Result<Vec<String>> {
        self.purge(older_than, dry_run).await
    }

    async fn check(&self) -> Result<()> {
        self.health().await
    }

    async fn redirect_url(&self, digest: &Digest, expires: Duration) -> Result<Option<String>> {
        Ok(Some(self.presigned_url(digest, expires)))
    }
}
