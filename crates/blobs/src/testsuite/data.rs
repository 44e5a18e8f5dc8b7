//! Test data for the suite: deterministic pseudo-random bytes that can be regenerated at any offset, so
//! that even a 64 MiB blob is streamed in and checked back byte for byte without ever being held whole.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use oci::{Digest, DigestAlgorithm, ResumableHasher};

use crate::{BlobStore, ByteStream, UploadId};

/// Deterministic pseudo-random bytes, addressable at any offset.
///
/// Why not a plain PRNG per byte: the suite fills and checks hundreds of MiB in test builds, which are
/// not optimised. So one period of [`Pattern::PERIOD`] random bytes is made once, and the infinite
/// pattern is that period rotated by a different amount in each repetition: filling is a few
/// `memcpy`s, and a store that dropped, repeated or swapped bytes still shows it at once (a prime
/// period lines up with no buffer size, and no two repetitions are alike).
#[derive(Clone)]
pub struct Pattern {
    period: Arc<[u8]>,
}

impl Pattern {
    /// Bytes in one period: a prime a little under 1 MiB.
    pub const PERIOD: u64 = 1_048_573;

    pub fn new(seed: u64) -> Pattern {
        let mut period = Vec::with_capacity(Self::PERIOD as usize + 8);
        let mut state = seed;
        while (period.len() as u64) < Self::PERIOD {
            state = splitmix64(state);
            period.extend_from_slice(&state.to_le_bytes());
        }
        period.truncate(Self::PERIOD as usize);
        Pattern {
            period: period.into(),
        }
    }

    /// Fills `buf` with the pattern's bytes from offset `start` on.
    pub fn fill(&self, start: u64, buf: &mut [u8]) {
        let p = Self::PERIOD;
        let mut pos = start;
        let mut rest = buf;
        while !rest.is_empty() {
            let (rep, off) = (pos / p, pos % p);
            // Repetition `rep` starts at this index of the period (a multiplier coprime with p).
            let idx = (off + rep.wrapping_mul(7919) % p) % p;
            let n = (p - idx).min(p - off).min(rest.len() as u64) as usize;
            let (head, tail) = rest.split_at_mut(n);
            let idx = idx as usize;
            head.copy_from_slice(&self.period[idx..idx + n]);
            rest = tail;
            pos += n as u64;
        }
    }

    /// The bytes `range` (for small amounts: it allocates them all).
    pub fn bytes(&self, range: Range<u64>) -> Vec<u8> {
        let len = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(0);
        let mut buf = vec![0; len];
        self.fill(range.start, &mut buf);
        buf
    }

    /// The digest of the first `len` bytes, computed in bounded memory.
    pub fn digest(&self, algorithm: DigestAlgorithm, len: u64) -> Digest {
        let mut hasher = ResumableHasher::new(algorithm);
        let mut buf = vec![0; 1 << 20];
        let mut pos = 0;
        while pos < len {
            let n = (len - pos).min(buf.len() as u64) as usize;
            self.fill(pos, &mut buf[..n]);
            hasher.update(&buf[..n]);
            pos += n as u64;
        }
        hasher.finish()
    }

    /// The bytes `range` as a stream, generated lazily in chunks whose sizes cycle through `sizes`
    /// (zeros included: a producer may send empty chunks).
    pub fn stream(&self, range: Range<u64>, sizes: &'static [usize]) -> ByteStream {
        let pattern = self.clone();
        let state = (range.start, 0usize);
        Box::pin(stream::unfold(state, move |(pos, i)| {
            let pattern = pattern.clone();
            async move {
                if pos >= range.end || sizes.is_empty() {
                    return None;
                }
                let n = (sizes[i % sizes.len()] as u64).min(range.end - pos);
                let mut buf = vec![0; n as usize];
                pattern.fill(pos, &mut buf);
                Some((Ok(Bytes::from(buf)), (pos + n, i + 1)))
            }
        }))
    }

    /// Checks, chunk by chunk and in bounded memory, that `s` yields exactly the bytes `range`.
    /// Panics with the first difference.
    pub async fn assert_stream(&self, mut s: ByteStream, range: Range<u64>, what: &str) {
        let mut pos = range.start;
        let mut want = Vec::new();
        while let Some(chunk) = s.next().await {
            let chunk =
                chunk.unwrap_or_else(|e| panic!("{what}: stream failed at offset {pos}: {e}"));
            let end = pos + chunk.len() as u64;
            assert!(
                end <= range.end,
                "{what}: more than {range:?} (got up to {end})"
            );
            want.resize(chunk.len(), 0);
            self.fill(pos, &mut want);
            if chunk[..] != want[..] {
                let i = first_difference(&chunk, &want);
                panic!("{what}: first wrong byte at offset {}", pos + i as u64);
            }
            pos = end;
        }
        assert_eq!(pos, range.end, "{what}: stream ended early");
    }
}

fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The bytes `range` of the pattern `seed`: shorthand for small test data.
pub fn pattern(seed: u64, range: Range<u64>) -> Vec<u8> {
    Pattern::new(seed).bytes(range)
}

/// A stream of the given chunks, in order.
pub fn chunks<I>(chunks: I) -> ByteStream
where
    I: IntoIterator,
    I::Item: Into<Bytes>,
{
    let items: Vec<io::Result<Bytes>> = chunks.into_iter().map(|c| Ok(c.into())).collect();
    Box::pin(stream::iter(items))
}

/// A stream of `data` cut into `chunk`-sized pieces.
pub fn chunked(data: &[u8], chunk: usize) -> ByteStream {
    chunks(data.chunks(chunk.max(1)).map(Bytes::copy_from_slice))
}

/// A stream that yields `chunks` and then fails the way a client that hangs up mid-body does.
pub fn failing<I>(chunks: I) -> ByteStream
where
    I: IntoIterator,
    I::Item: Into<Bytes>,
{
    let mut items: Vec<io::Result<Bytes>> = chunks.into_iter().map(|c| Ok(c.into())).collect();
    items.push(Err(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "client went away",
    )));
    Box::pin(stream::iter(items))
}

/// Collects a stream (for small amounts).
pub async fn collect(mut s: ByteStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Asserts two byte strings are equal without dumping them when they are not.
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    // Slice equality is a memcmp; the byte-by-byte search only runs to report a failure.
    if got != want {
        panic!(
            "{what}: first wrong byte at offset {}",
            first_difference(got, want)
        );
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Uploads `data` in 64 KiB chunks under a fresh upload id and commits it under its sha256 digest.
pub async fn put(store: &dyn BlobStore, data: &[u8]) -> Digest {
    let digest = Digest::sha256_of(data);
    let id = UploadId::random();
    let len = store
        .upload_write(&id, 0, chunked(data, 64 * 1024))
        .await
        .unwrap_or_else(|e| panic!("upload_write: {e}"));
    assert_eq!(
        len,
        data.len() as u64,
        "upload_write returns the new length"
    );
    store
        .upload_commit(&id, len, &digest)
        .await
        .unwrap_or_else(|e| panic!("upload_commit: {e}"));
    digest
}

/// Reads the whole blob `digest`, asserting it exists and that the reported size matches the bytes.
pub async fn read_all(store: &dyn BlobStore, digest: &Digest) -> Vec<u8> {
    let reader = store
        .read(digest, None)
        .await
        .unwrap_or_else(|e| panic!("read {digest}: {e}"))
        .unwrap_or_else(|| panic!("{digest} is not there"));
    let size = reader.size;
    let bytes = collect(reader.body)
        .await
        .unwrap_or_else(|e| panic!("reading {digest}: {e}"));
    assert_eq!(bytes.len() as u64, size, "size reported by read");
    bytes
}

/// Reads the first `len` bytes of upload `id`.
pub async fn read_upload(store: &dyn BlobStore, id: &UploadId, len: u64) -> Vec<u8> {
    read_upload_from(store, id, 0, len).await
}

/// Reads bytes `from..len` of upload `id` with `upload_read_from` (with `upload_read` when `from` is 0,
/// so both are exercised).
pub async fn read_upload_from(
    store: &dyn BlobStore,
    id: &UploadId,
    from: u64,
    len: u64,
) -> Vec<u8> {
    let s = if from == 0 {
        store.upload_read(id, len).await
    } else {
        store.upload_read_from(id, from, len).await
    };
    let s = s.unwrap_or_else(|e| panic!("upload_read {id} from {from}: {e}"));
    collect(s)
        .await
        .unwrap_or_else(|e| panic!("reading upload {id}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_random_access_and_seed_dependent() {
        let p = Pattern::new(7);
        let len = 3 * Pattern::PERIOD + 100;
        let whole = p.bytes(0..len);
        for r in [
            13..57,
            Pattern::PERIOD - 5..Pattern::PERIOD + 5,
            2 * Pattern::PERIOD..len,
        ] {
            assert!(
                p.bytes(r.clone()) == whole[r.start as usize..r.end as usize],
                "{r:?}"
            );
        }
        assert_ne!(pattern(8, 0..100), &whole[..100]);
        // No repetition looks like another: a store that repeats a period is caught.
        let period = Pattern::PERIOD as usize;
        assert!(whole[..period] != whole[period..2 * period]);
        assert!(whole[period..2 * period] != whole[2 * period..3 * period]);
    }

    #[tokio::test]
    async fn stream_matches_pattern_with_the_given_chunk_sizes() {
        let p = Pattern::new(3);
        let sizes: Vec<usize> = p
            .stream(5..1005, &[0, 7, 300])
            .map(|c| c.map(|b| b.len()).unwrap_or(usize::MAX))
            .collect()
            .await;
        assert_eq!(&sizes[..4], &[0, 7, 300, 0]);
        assert_eq!(sizes.iter().sum::<usize>(), 1000);
        let got = collect(p.stream(5..1005, &[0, 7, 300])).await.ok();
        assert_eq!(got, Some(p.bytes(5..1005)));
        p.assert_stream(p.stream(5..1005, &[64]), 5..1005, "self check")
            .await;
        assert_eq!(
            p.digest(DigestAlgorithm::Sha256, 1000),
            Digest::sha256_of(&p.bytes(0..1000))
        );
    }

    #[tokio::test]
    #[should_panic(expected = "first wrong byte at offset 10")]
    async fn assert_stream_reports_a_difference() {
        let p = Pattern::new(3);
        let mut bad = p.bytes(0..100);
        bad[10] ^= 1;
        p.assert_stream(chunked(&bad, 30), 0..100, "bad").await;
    }
}
