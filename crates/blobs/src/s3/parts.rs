//! How an upload's bytes are cut into parts, as a pure function of the part number, so that every
//! replica computes the same boundaries without asking anyone.
//!
//! S3 allows at most 10,000 parts per multipart upload, each at most 5 GiB and (but the last) at least
//! 5 MiB, and objects of at most 5 TiB. With a fixed part size of `chunksize` (10 MiB by default, as in
//! registry:2) an upload would stop at 10,000 parts, about 98 GiB. So the size grows with the part
//! number: parts 1 to 5,000 are `chunksize`; then every 500 parts the size doubles, up to 5 GiB. Nearly
//! every layer stays in the first 5,000 parts (49 GiB at the 10 MiB default, 24 GiB at the 5 MiB
//! minimum), where memory per upload is one `chunksize` buffer; only larger blobs buffer more (a 100 GiB
//! blob at the default ends in 80 MiB parts). The largest blob is then S3's 5 TiB object limit for any
//! `chunksize` of 6 MiB or more, and 4.9 TiB at 5 MiB ([`PartLayout::max_len`]).

/// S3's limit on the parts of one multipart upload.
pub(crate) const MAX_PARTS: u32 = 10_000;
/// S3's largest part.
pub(crate) const MAX_PART: u64 = 5 << 30;
/// S3's largest object.
pub(crate) const MAX_OBJECT: u64 = 5 << 40;
/// Parts of exactly `chunksize` before the size starts to grow.
const FLAT_PARTS: u32 = 5_000;
/// Parts per doubling after that.
const TIER_PARTS: u32 = 500;

/// The part sizes of one chunk size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PartLayout {
    chunk: u64,
}

impl PartLayout {
    /// `chunk` is the size of the first parts (at least 1; S3 wants at least 5 MiB, which the
    /// configuration enforces; tests use less where the engine allows it).
    pub fn new(chunk: u64) -> PartLayout {
        PartLayout {
            chunk: chunk.clamp(1, MAX_PART),
        }
    }

    pub fn chunk(&self) -> u64 {
        self.chunk
    }

    /// Size of part `n` (1-based) of the tier `tier` (0 for the flat parts).
    fn tier_size(&self, tier: u32) -> u64 {
        self.chunk
            .checked_shl(tier)
            .filter(|s| s >> tier == self.chunk)
            .map_or(MAX_PART, |s| s.min(MAX_PART))
    }

    /// Size of part `n` (1-based).
    pub fn size(&self, n: u32) -> u64 {
        if n <= FLAT_PARTS {
            self.tier_size(0)
        } else {
            self.tier_size((n - FLAT_PARTS - 1) / TIER_PARTS + 1)
        }
    }

    /// Offset of the first byte of part `n` (1-based): the sum of the sizes of parts `1..n`.
    pub fn start(&self, n: u32) -> u64 {
        let before = n.saturating_sub(1);
        let flat = u64::from(before.min(FLAT_PARTS)) * self.chunk;
        let mut rest = before.saturating_sub(FLAT_PARTS);
        let mut total = flat;
        let mut tier = 1;
        while rest > 0 {
            let here = rest.min(TIER_PARTS);
            total = total.saturating_add(u64::from(here) * self.tier_size(tier));
            rest -= here;
            tier += 1;
        }
        total
    }

    /// The part holding byte `offset`, and where that part starts; `None` past the last possible part.
    pub fn locate(&self, offset: u64) -> Option<(u32, u64)> {
        let flat_end = u64::from(FLAT_PARTS) * self.chunk;
        if offset < flat_end {
            let n = offset / self.chunk;
            return Some((n as u32 + 1, n * self.chunk));
        }
        let mut start = flat_end;
        let mut first = FLAT_PARTS + 1;
        let mut tier = 1;
        while first <= MAX_PARTS {
            let size = self.tier_size(tier);
            let count = TIER_PARTS.min(MAX_PARTS + 1 - first);
            let end = start + u64::from(count) * size;
            if offset < end {
                let k = (offset - start) / size;
                return Some((first + k as u32, start + k * size));
            }
            start = end;
            first += count;
            tier += 1;
        }
        None
    }

    /// The most bytes an upload can hold: all 10,000 parts, or S3's object limit if that is smaller.
    pub fn max_len(&self) -> u64 {
        self.start(MAX_PARTS + 1).min(MAX_OBJECT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn flat_then_doubling_up_to_the_part_limit() {
        let l = PartLayout::new(10 * MIB);
        assert_eq!(l.size(1), 10 * MIB);
        assert_eq!(l.size(5_000), 10 * MIB);
        assert_eq!(l.size(5_001), 20 * MIB);
        assert_eq!(l.size(5_500), 20 * MIB);
        assert_eq!(l.size(5_501), 40 * MIB);
        // 10 MiB doubled nine times is 5 GiB, S3's largest part, and no more.
        assert_eq!(l.size(9_001), 5 << 30);
        assert_eq!(l.size(9_501), MAX_PART);
        assert_eq!(l.size(10_000), MAX_PART);
        // A huge chunk size never overflows into a part larger than S3 takes.
        let big = PartLayout::new(u64::MAX);
        assert_eq!(big.size(1), MAX_PART);
        assert_eq!(big.size(10_000), MAX_PART);
    }

    #[test]
    fn starts_are_sums_of_sizes() {
        for chunk in [5 * MIB, 10 * MIB, 64 * 1024, 3 * MIB + 7] {
            let l = PartLayout::new(chunk);
            let mut sum = 0u64;
            for n in 1..=MAX_PARTS + 1 {
                assert_eq!(l.start(n), sum, "chunk {chunk}, part {n}");
                if n <= MAX_PARTS {
                    sum += l.size(n);
                }
            }
        }
    }

    #[test]
    fn locate_finds_the_part_of_every_boundary() {
        let l = PartLayout::new(5 * MIB);
        for n in [1, 2, 4_999, 5_000, 5_001, 5_500, 5_501, 9_999, 10_000] {
            let start = l.start(n);
            assert_eq!(l.locate(start), Some((n, start)), "start of part {n}");
            let last = start + l.size(n) - 1;
            assert_eq!(l.locate(last), Some((n, start)), "last byte of part {n}");
        }
        assert_eq!(l.locate(0), Some((1, 0)));
        assert_eq!(l.locate(l.start(MAX_PARTS + 1)), None, "past the last part");
    }

    #[test]
    fn maximum_sizes() {
        const GIB: u64 = 1 << 30;
        // At S3's minimum part size: 5,000 x 5 MiB + 500 x (10 MiB + ... + 5 GiB) = 4.88 TiB.
        let min = PartLayout::new(5 * MIB);
        assert_eq!(
            min.max_len(),
            5_000 * 5 * MIB + 500 * 5 * MIB * (2 + 4 + 8 + 16 + 32 + 64 + 128 + 256 + 512 + 1024)
        );
        assert!(min.max_len() > 4_900 * GIB);
        // From a little above, S3's 5 TiB object limit is what bounds a blob.
        assert_eq!(PartLayout::new(6 * MIB).max_len(), MAX_OBJECT);
        assert_eq!(PartLayout::new(10 * MIB).max_len(), MAX_OBJECT);
        // Fifty times what a fixed 10 MiB part would allow (10,000 parts = 97.7 GiB).
        assert!(PartLayout::new(10 * MIB).max_len() > 50 * (10_000 * 10 * MIB));
    }
}
