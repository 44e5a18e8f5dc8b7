//! Upload sessions on S3: what an upload holds, appending at an offset (discarding anything past it
//! first), reading it back, deleting it.
//!
//! An upload is a run of *part objects* `uploads/<id>/<chunk>/<n>` (see `keys.rs`), numbered from 1,
//! whose sizes follow [`PartLayout`]: every part of the run is full except perhaps the last. The run
//! ends at the first part that is missing or short; objects past it are garbage left by a write that
//! failed or lost a race, and the next write removes them. So the whole state of an upload is keyed by
//! its id and found with one listing: any replica can continue any upload, and nothing is kept in
//! memory between requests.
//!
//! Why objects and not the parts of one S3 multipart upload: parts of an incomplete multipart upload
//! can be neither read nor removed one by one, and the contract needs both (`upload_read`, and
//! truncating to an offset inside a part after a failed write). Objects can; and the commit that turns
//! them into a blob is a multipart upload of server-side copies (`commit.rs`), as registry:2's S3 driver
//! also copies an upload into place.
//!
//! A write buffers at most one part in memory: bytes collect until the part is full, the part is PUT,
//! the buffer starts over; the remainder at the end of the write becomes the short last part. Resuming
//! at an offset inside a part reads that part's first bytes back into the buffer. The cost of that: a
//! client that PATCHes in chunks much smaller than `chunksize` has its partial part read and written
//! again on each chunk (docker, containerd, podman and skopeo send a layer in one PATCH or PUT). Write order makes a
//! crash harmless: parts past the offset are deleted before anything is written, and a part is only
//! ever replaced by one holding the same bytes up to the offset, so at every moment the run holds at
//! least the `offset` bytes the caller recorded, as the contract requires.

use std::collections::{HashMap, HashSet};
use std::io;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::S3BlobStore;
use super::api::Object;
use super::client::S3Error;
use super::parts::{MAX_PARTS, PartLayout};
use crate::{ByteStream, Error, Result, UploadId};

/// Deletes in flight at once when clearing an upload.
const DELETE_CONCURRENCY: usize = 8;

/// What an upload holds, as found in one listing.
#[derive(Debug)]
pub(crate) struct Held {
    /// The part sizes the upload was started with.
    pub layout: PartLayout,
    /// The run: part numbers 1, 2, ... with their object sizes.
    pub run: Vec<(u32, u64)>,
    /// Bytes the run holds.
    pub len: u64,
    /// Every key listed under the upload (the run's parts and garbage alike).
    pub keys: Vec<String>,
}

impl Held {
    pub fn exists(&self) -> bool {
        !self.run.is_empty()
    }

    /// The part objects holding the first `len` bytes, with how many bytes of each: (key, bytes).
    pub fn pieces(&self, store: &S3BlobStore, id: &UploadId, len: u64) -> Vec<(String, u64)> {
        let mut pieces = Vec::new();
        let mut start = 0;
        for &(n, size) in &self.run {
            if start >= len {
                break;
            }
            let take = size.min(len - start);
            if take > 0 {
                pieces.push((store.keys.part(id, self.layout.chunk(), n), take));
            }
            start += size;
        }
        pieces
    }
}

impl S3BlobStore {
    /// Lists upload `id` and works out its run.
    pub(crate) async fn held(&self, id: &UploadId) -> Result<Held, S3Error> {
        let listed = self.bucket.list(&self.keys.upload(id)).await?;
        Ok(self.held_from(id, listed))
    }

    fn held_from(&self, id: &UploadId, listed: Vec<Object>) -> Held {
        let parts: Vec<(u64, u32, u64)> = listed
            .iter()
            .filter_map(|o| {
                let (chunk, n) = self.keys.parse_part(id, &o.key)?;
                Some((chunk, n, o.size))
            })
            .collect();
        // The chunk size of the upload is that of its first part (listings are in key order, so every
        // replica picks the same one if a crash left two).
        let chunk = parts.iter().find(|(_, n, _)| *n == 1).map(|(c, _, _)| *c);
        let layout = PartLayout::new(chunk.unwrap_or(self.chunk));
        let mut run = Vec::new();
        let mut len = 0;
        if let Some(chunk) = chunk {
            // By number, so that a run of 10,000 parts is found in one pass.
            let sizes: HashMap<u32, u64> = parts
                .iter()
                .filter(|(c, _, _)| *c == chunk)
                .map(|&(_, n, size)| (n, size))
                .collect();
            for n in 1..=MAX_PARTS {
                let Some(&size) = sizes.get(&n) else {
                    break;
                };
                let full = layout.size(n);
                if size > full {
                    // Not a part this layout could have written: the run ends before it.
                    break;
                }
                run.push((n, size));
                len += size;
                if size < full {
                    break;
                }
            }
        }
        Held {
            layout,
            run,
            len,
            keys: listed.into_iter().map(|o| o.key).collect(),
        }
    }

    pub(crate) async fn write(
        &self,
        id: &UploadId,
        offset: u64,
        mut data: ByteStream,
    ) -> Result<u64> {
        let held = self.held(id).await?;
        if offset > 0 && !held.exists() {
            return Err(Error::UploadNotFound(id.clone()));
        }
        if held.len < offset {
            return Err(Error::UploadOffset {
                id: id.clone(),
                have: held.len,
                offset,
            });
        }
        // Starting over takes this replica's chunk size; continuing keeps the upload's.
        let layout = if offset == 0 {
            PartLayout::new(self.chunk)
        } else {
            held.layout
        };
        let (first, first_start) = layout.locate(offset).ok_or_else(|| too_large(&layout))?;

        // The bytes of the part being continued that come before the offset.
        let mut buf = Vec::new();
        let keep_first = offset > first_start;
        if keep_first {
            let key = self.keys.part(id, layout.chunk(), first);
            buf = self.read_piece(&key, offset - first_start).await?.into();
        }

        // Discard everything past the offset before writing: whatever happens next, the run holds at
        // least `offset` bytes.
        let kept: HashSet<String> = held
            .run
            .iter()
            .filter(|&&(n, _)| n < first || (n == first && keep_first))
            .map(|&(n, _)| self.keys.part(id, layout.chunk(), n))
            .collect();
        let doomed: Vec<String> = held
            .keys
            .into_iter()
            .filter(|k| !kept.contains(k))
            .collect();
        self.delete_keys(doomed).await?;

        let mut n = first;
        let mut cap = layout.size(n);
        let mut received = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(Error::Source)?;
            received += chunk.len() as u64;
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                if n > MAX_PARTS {
                    return Err(too_large(&layout));
                }
                let room = (cap as usize).saturating_sub(buf.len());
                let take = room.min(rest.len());
                reserve(&mut buf, take, cap as usize);
                buf.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if buf.len() as u64 == cap {
                    let part = Bytes::from(std::mem::take(&mut buf));
                    self.bucket
                        .put(&self.keys.part(id, layout.chunk(), n), part)
                        .await?;
                    n += 1;
                    cap = if n <= MAX_PARTS { layout.size(n) } else { 0 };
                }
            }
        }
        // The short last part; or, for an upload that holds nothing at all, an empty part 1 that says
        // it exists.
        if !buf.is_empty() || (n == 1 && offset + received == 0) {
            self.bucket
                .put(&self.keys.part(id, layout.chunk(), n), Bytes::from(buf))
                .await?;
        }
        Ok(offset + received)
    }

    pub(crate) async fn read_upload(&self, id: &UploadId, len: u64) -> Result<ByteStream> {
        let held = self.held(id).await?;
        if !held.exists() || held.len < len {
            return Err(Error::UploadNotFound(id.clone()));
        }
        let store = self.clone();
        let pieces = held.pieces(self, id, len);
        let parts = stream::iter(pieces).then(move |(key, take)| {
            let store = store.clone();
            async move {
                match store.bucket.get(&key, Some(0..take)).await {
                    Ok(Some(response)) => Ok(response.stream()),
                    Ok(None) => Err(io::Error::other(format!("upload part {key} vanished"))),
                    Err(e) => Err(io::Error::other(e)),
                }
            }
        });
        Ok(Box::pin(parts.try_flatten()))
    }

    /// The first `len` bytes of object `key`, in memory: callers read at most one part.
    pub(crate) async fn read_piece(&self, key: &str, len: u64) -> Result<Bytes> {
        let mut buf = Vec::with_capacity(len as usize);
        if len > 0 {
            let Some(response) = self.bucket.get(key, Some(0..len)).await? else {
                return Err(Error::Io(io::Error::other(format!("part {key} vanished"))));
            };
            let mut body = response.stream();
            while let Some(chunk) = body.next().await {
                buf.extend_from_slice(&chunk?);
            }
        }
        if buf.len() as u64 != len {
            return Err(Error::Io(io::Error::other(format!(
                "part {key} gave {} bytes, expected {len}",
                buf.len()
            ))));
        }
        Ok(Bytes::from(buf))
    }

    pub(crate) async fn delete_upload(&self, id: &UploadId) -> Result<()> {
        let listed = self.bucket.list(&self.keys.upload(id)).await?;
        self.delete_keys(listed.into_iter().map(|o| o.key).collect())
            .await?;
        Ok(())
    }

    async fn delete_keys(&self, keys: Vec<String>) -> Result<(), S3Error> {
        // Owned keys and bucket in each future: borrowed ones trip the `Send` check of the trait's
        // boxed futures (a known limit of higher-ranked closures in async code).
        stream::iter(keys)
            .map(|key| {
                let bucket = self.bucket.clone();
                async move { bucket.delete(&key).await }
            })
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(drop)
    }
}

/// Grows `buf` for `more` bytes without letting the doubling overshoot `cap` (a part's size): memory
/// stays within one part.
fn reserve(buf: &mut Vec<u8>, more: usize, cap: usize) {
    let need = buf.len() + more;
    if need > buf.capacity() {
        let target = (buf.capacity() * 2).max(need).min(cap.max(need));
        buf.reserve_exact(target - buf.len());
    }
}

fn too_large(layout: &PartLayout) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!(
            "the upload exceeds the largest blob the S3 backend can store ({} bytes)",
            layout.max_len()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::S3Settings;

    fn store(chunk: u64) -> S3BlobStore {
        let mut s = S3Settings::for_test_server("http://127.0.0.1:1", "r", "b", "a", "s", "root");
        s.chunk_size = chunk;
        S3BlobStore::open(&s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn listing(store: &S3BlobStore, id: &UploadId, parts: &[(u64, u32, u64)]) -> Vec<Object> {
        parts
            .iter()
            .map(|&(chunk, n, size)| Object {
                key: store.keys.part(id, chunk, n),
                size,
            })
            .collect()
    }

    #[test]
    fn the_run_starts_at_part_one_and_stops_at_the_first_short_or_missing_part() {
        let s = store(100);
        let id = UploadId::random();
        // Full 1 and 2, short 3, then a stale full 4 that a failed write left.
        let held = s.held_from(
            &id,
            listing(
                &s,
                &id,
                &[(100, 1, 100), (100, 2, 100), (100, 3, 40), (100, 4, 100)],
            ),
        );
        assert_eq!(held.run, [(1, 100), (2, 100), (3, 40)]);
        assert_eq!(held.len, 240);
        assert_eq!(
            held.keys.len(),
            4,
            "every key is known, so the stale one can be deleted"
        );
        // A gap ends the run.
        let held = s.held_from(&id, listing(&s, &id, &[(100, 1, 100), (100, 3, 100)]));
        assert_eq!((held.run.len(), held.len), (1, 100));
        // A part larger than its layout allows is not part of the run.
        let held = s.held_from(&id, listing(&s, &id, &[(100, 1, 100), (100, 2, 150)]));
        assert_eq!(held.len, 100);
        // No part 1: the upload holds nothing (an empty part 1 is an empty upload that exists).
        let held = s.held_from(&id, listing(&s, &id, &[(100, 2, 100)]));
        assert!(!held.exists());
        let held = s.held_from(&id, listing(&s, &id, &[(100, 1, 0)]));
        assert!(held.exists() && held.len == 0);
    }

    #[test]
    fn an_upload_keeps_the_chunk_size_of_its_first_part() {
        let s = store(100);
        let id = UploadId::random();
        let held = s.held_from(
            &id,
            listing(&s, &id, &[(70, 1, 70), (70, 2, 10), (100, 2, 100)]),
        );
        assert_eq!(held.layout.chunk(), 70);
        assert_eq!((held.len, held.run.len()), (80, 2));
        let pieces = held.pieces(&s, &id, 75);
        assert_eq!(
            pieces,
            [(s.keys.part(&id, 70, 1), 70), (s.keys.part(&id, 70, 2), 5)]
        );
    }

    #[test]
    fn reserve_stays_within_a_part() {
        let mut buf = Vec::new();
        for _ in 0..100 {
            reserve(&mut buf, 700, 50_000);
            buf.extend_from_slice(&[0; 700]);
            if buf.len() + 700 > 50_000 {
                break;
            }
        }
        assert!(buf.capacity() <= 50_000, "capacity {}", buf.capacity());
    }
}
