//! A SHA-256/SHA-512 hasher whose state can be saved and restored, so an upload can resume on another
//! request, after a restart, or on another replica without re-reading the bytes it already has.
//!
//! The block function is `sha2`'s `compress256`/`compress512`, which picks the CPU's SHA extensions at run
//! time; only the buffering, padding and the state format live here.

use sha2::digest::generic_array::GenericArray;
use sha2::digest::typenum::{U64, U128};

use crate::{Digest, DigestAlgorithm};

const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const SHA512_IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Sha256([u32; 8]),
    Sha512([u64; 8]),
}

/// Incremental hasher with a stable, serializable state (see [`ResumableHasher::to_bytes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumableHasher {
    state: State,
    /// Total bytes fed so far.
    len: u64,
    /// Bytes of the current, incomplete block (always shorter than one block).
    pending: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt hash state")]
pub struct CorruptHashState;

impl ResumableHasher {
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        let state = match algorithm {
            DigestAlgorithm::Sha256 => State::Sha256(SHA256_IV),
            DigestAlgorithm::Sha512 => State::Sha512(SHA512_IV),
        };
        ResumableHasher {
            state,
            len: 0,
            pending: Vec::with_capacity(128),
        }
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        match self.state {
            State::Sha256(_) => DigestAlgorithm::Sha256,
            State::Sha512(_) => DigestAlgorithm::Sha512,
        }
    }

    /// Number of bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn block_len(&self) -> usize {
        match self.state {
            State::Sha256(_) => 64,
            State::Sha512(_) => 128,
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        let block = self.block_len();
        if !self.pending.is_empty() {
            let take = (block - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < block {
                return;
            }
            let full = std::mem::take(&mut self.pending);
            self.compress(&full);
            self.pending = full;
            self.pending.clear();
        }
        let whole = data.len() - data.len() % block;
        self.compress(&data[..whole]);
        self.pending.extend_from_slice(&data[whole..]);
    }

    /// Runs the block function over `blocks`, whose length is a multiple of the block size.
    fn compress(&mut self, blocks: &[u8]) {
        if blocks.is_empty() {
            return;
        }
        match &mut self.state {
            State::Sha256(s) => {
                let n = blocks.len() / 64;
                // SAFETY: GenericArray<u8, U64> is a repr(transparent) [u8; 64] with alignment 1, and
                // `blocks` holds exactly n * 64 initialised bytes that outlive the borrow.
                let arr = unsafe {
                    std::slice::from_raw_parts(blocks.as_ptr().cast::<GenericArray<u8, U64>>(), n)
                };
                sha2::compress256(s, arr);
            }
            State::Sha512(s) => {
                let n = blocks.len() / 128;
                // SAFETY: as above, for 128-byte blocks.
                let arr = unsafe {
                    std::slice::from_raw_parts(blocks.as_ptr().cast::<GenericArray<u8, U128>>(), n)
                };
                sha2::compress512(s, arr);
            }
        }
    }

    /// Pads, runs the last block(s) and returns the digest. The hasher itself is left untouched.
    pub fn finish(&self) -> Digest {
        let mut tail = self.clone();
        let block = tail.block_len();
        let bit_len = u128::from(tail.len) * 8;
        let length_field = block / 8; // 8 bytes for SHA-256, 16 for SHA-512
        let mut pad = tail.pending.clone();
        pad.push(0x80);
        while pad.len() % block != block - length_field {
            pad.push(0);
        }
        match length_field {
            8 => pad.extend_from_slice(&(bit_len as u64).to_be_bytes()),
            _ => pad.extend_from_slice(&bit_len.to_be_bytes()),
        }
        tail.pending.clear();
        tail.compress(&pad);
        let raw: Vec<u8> = match tail.state {
            State::Sha256(s) => s.iter().flat_map(|w| w.to_be_bytes()).collect(),
            State::Sha512(s) => s.iter().flat_map(|w| w.to_be_bytes()).collect(),
        };
        Digest::from_raw(self.algorithm(), &raw)
    }

    /// Serialises the state: algorithm byte, total length (u64 BE), state words (BE), pending bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + 64 + self.pending.len());
        match &self.state {
            State::Sha256(s) => {
                out.push(1);
                out.extend_from_slice(&self.len.to_be_bytes());
                s.iter()
                    .for_each(|w| out.extend_from_slice(&w.to_be_bytes()));
            }
            State::Sha512(s) => {
                out.push(2);
                out.extend_from_slice(&self.len.to_be_bytes());
                s.iter()
                    .for_each(|w| out.extend_from_slice(&w.to_be_bytes()));
            }
        }
        out.extend_from_slice(&self.pending);
        out
    }

    /// Restores a state written by [`ResumableHasher::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Self, CorruptHashState> {
        let (&tag, rest) = b.split_first().ok_or(CorruptHashState)?;
        if rest.len() < 8 {
            return Err(CorruptHashState);
        }
        let len = u64::from_be_bytes(rest[..8].try_into().map_err(|_| CorruptHashState)?);
        let rest = &rest[8..];
        let (state, words_len, block) = match tag {
            1 if rest.len() >= 32 => {
                let mut s = [0u32; 8];
                for (i, w) in s.iter_mut().enumerate() {
                    *w = u32::from_be_bytes(rest[i * 4..i * 4 + 4].try_into().unwrap_or_default());
                }
                (State::Sha256(s), 32, 64)
            }
            2 if rest.len() >= 64 => {
                let mut s = [0u64; 8];
                for (i, w) in s.iter_mut().enumerate() {
                    *w = u64::from_be_bytes(rest[i * 8..i * 8 + 8].try_into().unwrap_or_default());
                }
                (State::Sha512(s), 64, 128)
            }
            _ => return Err(CorruptHashState),
        };
        let pending = rest[words_len..].to_vec();
        if pending.len() as u64 != len % block as u64 {
            return Err(CorruptHashState);
        }
        Ok(ResumableHasher {
            state,
            len,
            pending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn reference(alg: DigestAlgorithm, data: &[u8]) -> String {
        match alg {
            DigestAlgorithm::Sha256 => {
                format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
            }
            DigestAlgorithm::Sha512 => {
                format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
            }
        }
    }

    #[test]
    fn matches_sha2_for_every_length_and_split_and_survives_serialisation() {
        let data: Vec<u8> = (0..700u32).map(|i| (i * 31 % 251) as u8).collect();
        for alg in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            for len in [0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 300, 700] {
                let want = reference(alg, &data[..len]);
                for split in [0, 1.min(len), len / 3, len / 2, len] {
                    let mut h = ResumableHasher::new(alg);
                    h.update(&data[..split]);
                    let mut h = ResumableHasher::from_bytes(&h.to_bytes()).unwrap();
                    h.update(&data[split..len]);
                    assert_eq!(
                        h.finish().to_string(),
                        want,
                        "{alg} len {len} split {split}"
                    );
                    assert_eq!(h.len(), len as u64);
                }
            }
        }
    }

    #[test]
    fn rejects_corrupt_state() {
        assert!(ResumableHasher::from_bytes(&[]).is_err());
        assert!(ResumableHasher::from_bytes(&[9; 50]).is_err());
        let mut h = ResumableHasher::new(DigestAlgorithm::Sha256);
        h.update(b"abc");
        let mut b = h.to_bytes();
        b.pop(); // pending bytes no longer match the length
        assert!(ResumableHasher::from_bytes(&b).is_err());
    }
}
