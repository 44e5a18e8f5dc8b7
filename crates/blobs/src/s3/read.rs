//! Committed blobs on S3: their size, streamed reads of the whole blob or of a byte range, deletion.
//!
//! A ranged read is one GET with a `Range` header; the blob's size comes back in `Content-Range`, so a
//! pull costs one request. Only an unsatisfiable range costs a second (a HEAD), to report the size.

use std::ops::Range;

use hyper::StatusCode;
use oci::Digest;

use super::S3BlobStore;
use super::api::{content_length, content_range_total};
use super::client::S3Error;
use crate::{BlobReader, Error, Result};

/// The largest object CopyObject copies (S3's limit).
const MAX_COPY: u64 = 5 << 30;

impl S3BlobStore {
    pub(crate) async fn stat_blob(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(self.bucket.head(&self.keys.blob(digest)).await?)
    }

    pub(crate) async fn read_blob(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<Option<BlobReader>> {
        self.read_key(&self.keys.blob(digest), range).await
    }

    /// [`read_blob`](Self::read_blob) of the object `key`, wherever it lies (registry:2's blobs too).
    pub(crate) async fn read_key(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<BlobReader>> {
        let key = key.to_string();
        let Some(range) = range else {
            let Some(response) = self.bucket.get(&key, None).await? else {
                return Ok(None);
            };
            let size = content_length(&response, "GetObject")?;
            return Ok(Some(BlobReader {
                size,
                body: response.stream(),
                file: None,
            }));
        };
        if range.start >= range.end {
            return self.unsatisfiable(&key, range).await;
        }
        let response = match self.bucket.get(&key, Some(range.clone())).await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(S3Error::Status { status: 416, .. }) => {
                return self.unsatisfiable(&key, range).await;
            }
            Err(e) => return Err(e.into()),
        };
        let size = if response.status == StatusCode::PARTIAL_CONTENT {
            content_range_total(&response)
        } else {
            // A whole answer to a range request: only right if the range was the whole blob.
            content_length(&response, "GetObject")
                .ok()
                .filter(|&n| range == (0..n))
        };
        match size {
            // S3 clips a range that runs past the end; the contract refuses it.
            Some(size) if range.end <= size => Ok(Some(BlobReader {
                size,
                body: response.stream(),
                file: None,
            })),
            Some(size) => Err(Error::RangeNotSatisfiable { range, size }),
            None => Err(Error::Io(std::io::Error::other(format!(
                "S3 GetObject: answer {} without a usable Content-Range",
                response.status
            )))),
        }
    }

    /// `RangeNotSatisfiable` with the blob's size, or `None` if the blob is not there.
    async fn unsatisfiable(&self, key: &str, range: Range<u64>) -> Result<Option<BlobReader>> {
        match self.bucket.head(key).await? {
            None => Ok(None),
            Some(size) => Err(Error::RangeNotSatisfiable { range, size }),
        }
    }

    /// Copies the blob under the quarantine prefix on the server, then deletes it. CopyObject takes
    /// objects up to 5 GiB; a larger blob is refused (it stays where it is, and the caller says so).
    pub(crate) async fn quarantine_blob(&self, digest: &Digest) -> Result<bool> {
        let key = self.keys.blob(digest);
        let Some(size) = self.bucket.head(&key).await? else {
            return Ok(false);
        };
        if size > MAX_COPY {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("{digest} is {size} bytes, over CopyObject's 5 GiB: not quarantined"),
            )));
        }
        self.bucket
            .copy(&key, &self.keys.quarantine(digest))
            .await?;
        self.bucket.delete(&key).await?;
        Ok(true)
    }

    pub(crate) async fn delete_blob(&self, digest: &Digest) -> Result<bool> {
        let key = self.keys.blob(digest);
        // S3 answers a DELETE the same whether the object was there or not.
        if self.bucket.head(&key).await?.is_none() {
            return Ok(false);
        }
        self.bucket.delete(&key).await?;
        Ok(true)
    }
}
