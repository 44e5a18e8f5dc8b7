//! Reading and deleting blobs through a repository.
//!
//! A blob is readable only through a repository it is linked to (pushed or mounted there): that is what
//! makes per-repository authorization mean anything, since digests of public layers are well known.

use std::ops::Range;

use bytes::Bytes;
use futures_util::stream;
use oci::{Digest, RepoName};

use crate::notify::event::Action;
use crate::proxy::ServedBytes;
use crate::{ByteStream, Error, FileRange, Registry, Result};

/// A blob as a repository sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// A byte range as an HTTP `Range: bytes=...` header asks for it, before it is resolved against the size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive).
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Last(u64),
}

/// A blob's bytes as a range of its open local file, for a server that sends them without copying.
#[derive(Debug)]
pub struct ZeroCopy {
    pub range: FileRange,
    /// For a pull-through cache's hit: to be told the length of each piece as it is sent.
    pub served: Option<ServedBytes>,
}

/// A blob (or part of it) being served.
pub struct BlobContent {
    pub digest: Digest,
    /// Size of the whole blob.
    pub size: u64,
    /// The range served, end exclusive, when a range was asked for.
    pub range: Option<Range<u64>>,
    pub body: ByteStream,
}

impl Registry {
    /// HEAD of a blob: BLOB_UNKNOWN unless it is linked to `repo`.
    pub async fn stat_blob(&self, repo: &RepoName, digest: &Digest) -> Result<BlobInfo> {
        self.adopt_ahead(repo).await?;
        // A cached repository answers from the cache, or else from its upstream.
        let route = self.proxy_route(repo);
        let repo = route.as_ref().map_or(repo, |r| &r.local);
        let size = match self.meta.catalog.linked_blob(repo, digest).await? {
            Some(size) => size,
            None => match self.meta.catalog.manifest(repo, digest).await? {
                Some(m) => m.payload.len() as u64,
                None => match &route {
                    Some(route) => self.fetch_blob_size(route, digest).await?,
                    None => return Err(Error::BlobUnknown(digest.clone())),
                },
            },
        };
        Ok(BlobInfo {
            digest: digest.clone(),
            size,
        })
    }

    /// A blob's content, whole or a range of it (RangeNotSatisfiable when the range misses the blob),
    /// for readers that are not a client's pull (the web interface looking at a config): no pull
    /// event. The API's GET is [`get_blob_file`](Self::get_blob_file).
    pub async fn get_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobContent> {
        Ok(self.serve_blob_file(repo, digest, range).await?.0)
    }

    /// GET of a blob: [`get_blob`](Self::get_blob), a pull (its event, see `notify`), and the same
    /// bytes as a range of an open local file when the blob
    /// store keeps blobs in files (see `blobs::BlobReader::file`): a server may send that without
    /// copying it, instead of streaming the content's `body`. `None` for every other store and for
    /// manifests read as blobs. A cached repository's hit comes with the counter its sent bytes go to.
    pub async fn get_blob_file(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<(BlobContent, Option<ZeroCopy>)> {
        let served = self.serve_blob_file(repo, digest, range).await?;
        self.note_blob_pull(repo, digest, served.0.size);
        Ok(served)
    }

    async fn serve_blob_file(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<(BlobContent, Option<ZeroCopy>)> {
        self.adopt_ahead(repo).await?;
        // A cached repository answers from the cache, or else joins the blob's upstream fetch.
        let route = self.proxy_route(repo);
        let repo = route.as_ref().map_or(repo, |r| &r.local);
        let Some(size) = self.meta.catalog.linked_blob(repo, digest).await? else {
            // As registry:2, a manifest of the repository is readable through the blob endpoints too.
            return match self.meta.catalog.manifest(repo, digest).await? {
                Some(m) => manifest_as_blob(digest, m.payload, range).map(|c| (c, None)),
                None => match &route {
                    Some(route) => Ok((self.fetch_blob(route, digest, range).await?, None)),
                    None => Err(Error::BlobUnknown(digest.clone())),
                },
            };
        };
        let range = range.map(|r| r.resolve(size)).transpose()?;
        match self.blobs.read(digest, range.clone()).await? {
            Some(reader) => {
                let served = route
                    .as_ref()
                    .and_then(|_| self.served_from_cache(repo, digest, reader.size));
                let body = match &served {
                    Some(served) => served.clone().counting(reader.body),
                    None => reader.body,
                };
                let file = reader.file.map(|range| ZeroCopy { range, served });
                let content = BlobContent {
                    digest: digest.clone(),
                    size: reader.size,
                    range,
                    body,
                };
                Ok((content, file))
            }
            None => {
                // Linked but absent: the links promise bytes that GC should never have removed.
                tracing::error!(%repo, %digest, "blob linked to the repository is missing from storage");
                Err(Error::BlobUnknown(digest.clone()))
            }
        }
    }

    /// Where a GET of blob `digest` through `repo` is sent instead of being served: a URL of the storage,
    /// when redirects are configured, the blob is linked to `repo` (the same check as `get_blob`, so a
    /// redirect never reveals a blob the repository may not read) and the store has such URLs. `None`:
    /// serve it with `get_blob` (also for cached repositories and for manifests read as blobs).
    pub async fn blob_redirect(&self, repo: &RepoName, digest: &Digest) -> Result<Option<String>> {
        let Some(expires) = self.settings.blob_redirect else {
            return Ok(None);
        };
        if self.proxy_route(repo).is_some() {
            return Ok(None);
        }
        self.adopt_ahead(repo).await?;
        let Some(size) = self.meta.catalog.linked_blob(repo, digest).await? else {
            return Ok(None);
        };
        let url = self.blobs.redirect_url(digest, expires).await?;
        if url.is_some() {
            self.note_blob_pull(repo, digest, size);
        }
        Ok(url)
    }

    /// The pull event of a blob GET (written in a batch: see `notify`).
    fn note_blob_pull(&self, repo: &RepoName, digest: &Digest, size: u64) {
        if self.notifies() {
            let events = self.blob_events(Action::Pull, repo, digest, size, None);
            self.note_pull_events(events);
        }
    }

    /// Holds blob `digest` against a concurrent link or deletion of its bytes in this process (see
    /// [`crate::keyed_lock`]): held from finding the bytes present to linking them, and by eviction from
    /// finding the blob unlinked to deleting its bytes.
    pub(crate) async fn lock_blob(&self, digest: &Digest) -> crate::keyed_lock::KeyedGuard {
        self.blob_locks.lock_digest(digest).await
    }

    /// DELETE of a blob: unlinks it from `repo` (bytes are swept later by GC). Unsupported when deletes are off.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.writable_in(repo)?;
        self.adopt_ahead(repo).await?;
        if !self.settings.delete_enabled {
            return Err(Error::Unsupported("deletes are disabled".into()));
        }
        let events = self.delete_events(repo, Some(digest), None);
        let unlink = self.meta.catalog.unlink_blob(repo, digest);
        if self.noting(events, unlink).await? {
            Ok(())
        } else {
            Err(Error::BlobUnknown(digest.clone()))
        }
    }
}

impl ByteRange {
    /// The bytes this range names in a blob of `size` bytes, end exclusive, clipped to the blob as
    /// RFC 9110 says; `RangeNotSatisfiable` when it names none of them.
    pub fn resolve(self, size: u64) -> Result<Range<u64>> {
        match self {
            ByteRange::FromTo(first, last) if first <= last && first < size => {
                Ok(first..last.saturating_add(1).min(size))
            }
            ByteRange::From(first) if first < size => Ok(first..size),
            ByteRange::Last(n) if n > 0 && size > 0 => Ok(size - n.min(size)..size),
            _ => Err(Error::RangeNotSatisfiable { size }),
        }
    }
}

/// A manifest's payload served as a blob. Manifests are small and already in memory, so one chunk.
fn manifest_as_blob(
    digest: &Digest,
    payload: Bytes,
    range: Option<ByteRange>,
) -> Result<BlobContent> {
    let size = payload.len() as u64;
    let range = range.map(|r| r.resolve(size)).transpose()?;
    let bytes = match &range {
        // The range lies within the payload, whose length came from a usize.
        Some(r) => payload.slice(r.start as usize..r.end as usize),
        None => payload,
    };
    Ok(BlobContent {
        digest: digest.clone(),
        size,
        range,
        body: Box::pin(stream::once(async move { Ok(bytes) })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_against_the_size() {
        use ByteRange::*;
        let unsat = None;
        let cases: &[(ByteRange, u64, Option<Range<u64>>)] = &[
            (FromTo(0, 0), 10, Some(0..1)),
            (FromTo(2, 5), 10, Some(2..6)),
            (FromTo(2, 100), 10, Some(2..10)),
            (FromTo(9, 9), 10, Some(9..10)),
            (FromTo(10, 12), 10, unsat.clone()),
            (FromTo(5, 2), 10, unsat.clone()),
            (FromTo(0, u64::MAX), 10, Some(0..10)),
            (From(0), 10, Some(0..10)),
            (From(9), 10, Some(9..10)),
            (From(10), 10, unsat.clone()),
            (Last(3), 10, Some(7..10)),
            (Last(30), 10, Some(0..10)),
            (Last(0), 10, unsat.clone()),
            (From(0), 0, unsat.clone()),
            (Last(5), 0, unsat.clone()),
            (FromTo(0, 0), 0, unsat),
        ];
        for (range, size, want) in cases {
            match (range.resolve(*size), want) {
                (Ok(got), Some(want)) => assert_eq!(&got, want, "{range:?} of {size}"),
                (Err(Error::RangeNotSatisfiable { size: s }), None) => assert_eq!(s, *size),
                (got, _) => panic!("{range:?} of {size}: got {got:?}, want {want:?}"),
            }
        }
    }
}
