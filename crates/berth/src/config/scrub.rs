//! berth's `scrub` section: how `berth scrub` reads the blobs it verifies (registry:2 has no scrub).
//!
//! ```yaml
//! scrub:
//!   rate: 100M     # bytes hashed per second at most (binary units); 0: as fast as the storage reads
//! ```
//!
//! The default leaves most of a disk's bandwidth to the registry serving beside the scrub.

use super::ConfigError;
use super::read::{Section, parse_or};
use super::values::parse_size;
use super::yaml::{Printed, mapping, number};

pub const DEFAULT_RATE: u64 = 100 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubConfig {
    /// Bytes hashed per second at most; `None`: no limit.
    pub rate: Option<u64>,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        ScrubConfig {
            rate: Some(DEFAULT_RATE),
        }
    }
}

pub fn read(mut s: Section<'_>) -> Result<ScrubConfig, ConfigError> {
    let rate = s.scalar("rate")?;
    s.finish();
    let rate = parse_or(&rate, DEFAULT_RATE, parse_size)?;
    Ok(ScrubConfig {
        rate: (rate > 0).then_some(rate),
    })
}

impl ScrubConfig {
    pub fn to_yaml(&self) -> Printed {
        mapping([("rate", number(self.rate.unwrap_or(0)))])
    }
}
