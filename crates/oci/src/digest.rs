//! Content digests (`algorithm:encoded`), as the image spec's descriptor grammar defines them.
//!
//! Only registered algorithms are accepted (sha256, sha512): an unregistered but well-formed algorithm is
//! reported separately from a malformed string, because the spec answers them differently.

use std::fmt;
use std::str::FromStr;

/// A hash algorithm berth can verify content with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    Sha256,
    Sha512,
}

impl DigestAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// Length of the lowercase hex encoding of this algorithm's output.
    pub fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated digest. The encoded part is always lowercase hex of the algorithm's exact length,
/// so it is safe to use as a path component.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    hex: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest {0:?}: expected algorithm:hex")]
    Malformed(String),
    #[error("unsupported digest algorithm {0:?}: berth supports sha256 and sha512")]
    UnsupportedAlgorithm(String),
}

impl Digest {
    /// Builds a digest from raw hash output.
    pub fn from_raw(algorithm: DigestAlgorithm, raw: &[u8]) -> Digest {
        debug_assert_eq!(raw.len() * 2, algorithm.hex_len());
        Digest {
            algorithm,
            hex: hex::encode(raw),
        }
    }

    /// The digest of `data`, computed in one go (for small payloads such as manifests).
    pub fn of(algorithm: DigestAlgorithm, data: &[u8]) -> Digest {
        let mut h = crate::ResumableHasher::new(algorithm);
        h.update(data);
        h.finish()
    }

    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest::of(DigestAlgorithm::Sha256, data)
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The encoded (hex) part, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Nearly every digest a registry parses (one per blob or manifest request) is `sha256:` and 64
        // lowercase hex digits: that shape is checked in one pass. Anything else takes the general
        // grammar below, which accepts this shape too, so the result is the same either way.
        if let Some(hex) = s.strip_prefix("sha256:")
            && hex.len() == DigestAlgorithm::Sha256.hex_len()
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Ok(Digest {
                algorithm: DigestAlgorithm::Sha256,
                hex: hex.to_string(),
            });
        }
        let malformed = || DigestError::Malformed(s.chars().take(200).collect());
        let (alg, encoded) = s.split_once(':').ok_or_else(malformed)?;
        // algorithm ::= component (separator component)*, component ::= [a-z0-9]+, separator ::= [+._-]
        let alg_ok = !alg.is_empty()
            && alg.split(['+', '.', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        // encoded ::= [a-zA-Z0-9=_-]+
        let enc_ok = !encoded.is_empty()
            && encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-');
        if !alg_ok || !enc_ok {
            return Err(malformed());
        }
        let algorithm = match alg {
            "sha256" => DigestAlgorithm::Sha256,
            "sha512" => DigestAlgorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_string())),
        };
        let hex_ok = encoded.len() == algorithm.hex_len()
            && encoded
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err(malformed());
        }
        Ok(Digest {
            algorithm,
            hex: encoded.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256_EMPTY: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_rejects() {
        let long512 = format!("sha512:{}", "a".repeat(128));
        let bad_hex = format!("sha256:{}g", "a".repeat(63));
        let too_long = format!("{SHA256_EMPTY}0");
        let upper_alg = SHA256_EMPTY.replace("sha256", "SHA256");
        let cases: &[(&str, Result<(), bool>)] = &[
            // (input, Ok or Err(is_unsupported))
            (SHA256_EMPTY, Ok(())),
            (&long512, Ok(())),
            ("sha256:totallywrong", Err(false)),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                Err(false),
            ),
            ("sha256:e3b0", Err(false)),
            ("sha256", Err(false)),
            (":abc", Err(false)),
            ("sha256:", Err(false)),
            ("sha256:../../etc/passwd", Err(false)),
            ("md5:d41d8cd98f00b204e9800998ecf8427e", Err(true)),
            (
                "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
                Err(true),
            ),
            ("SHA256:abc", Err(false)),
            // The length of a sha256 digest, without being one.
            (&bad_hex, Err(false)),
            (&too_long, Err(false)),
            (&upper_alg, Err(false)),
        ];
        for (input, want) in cases {
            let got = input.parse::<Digest>();
            match (want, &got) {
                (Ok(()), Ok(d)) => assert_eq!(&d.to_string(), input),
                (Err(true), Err(DigestError::UnsupportedAlgorithm(_))) => {}
                (Err(false), Err(DigestError::Malformed(_))) => {}
                _ => panic!("{input}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn digest_of_empty_is_the_well_known_value() {
        assert_eq!(Digest::sha256_of(b"").to_string(), SHA256_EMPTY);
    }
}
