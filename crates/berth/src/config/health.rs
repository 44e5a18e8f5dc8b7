//! The `health` section: registry:2's periodic storage check (`storagedriver.enabled`, `interval`,
//! `threshold`), which berth runs over the storage and the metadata store and serves on `/readyz` and the
//! debug server's `/debug/health`.
//!
//! One difference from registry:2: the check is on unless `enabled: false`, because a readiness probe that
//! checks nothing would report ready over a broken disk. registry:2's `file`, `http` and `tcp` checks are
//! reported and ignored.

use std::time::Duration;

use super::read::{Section, Setting, parse_or};
use super::values::{format_duration, parse_bool, parse_duration, parse_int};
use super::yaml::{Printed, flag, number, text};
use super::{ConfigError, mapping};

/// registry:2's default interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// `storagedriver.enabled`.
    pub enabled: bool,
    pub interval: Duration,
    /// Consecutive failures before a check fails; 0 (registry:2's default) fails at the first.
    pub threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            interval: DEFAULT_INTERVAL,
            threshold: 0,
        }
    }
}

#[derive(Debug, Default)]
struct RawHealth {
    enabled: Option<Setting>,
    interval: Option<Setting>,
    threshold: Option<Setting>,
}

pub fn read(mut s: Section<'_>) -> Result<HealthConfig, ConfigError> {
    let mut driver = s.section("storagedriver")?;
    let raw = RawHealth {
        enabled: driver.scalar("enabled")?,
        interval: driver.scalar("interval")?,
        threshold: driver.scalar("threshold")?,
    };
    driver.finish();
    for key in ["file", "http", "tcp"] {
        s.ignore(
            key,
            "registry:2's file, http and tcp health checks are not supported by berth",
        );
    }
    s.finish();
    raw.validate()
}

impl RawHealth {
    fn validate(self) -> Result<HealthConfig, ConfigError> {
        let interval = parse_or(&self.interval, DEFAULT_INTERVAL, |t| {
            match parse_duration(t)? {
                // registry:2 reads 0 as its default.
                d if d.is_zero() => Ok(DEFAULT_INTERVAL),
                d if d < Duration::from_millis(100) => {
                    Err("must be at least 100ms (a check per interval)".to_string())
                }
                d => Ok(d),
            }
        })?;
        Ok(HealthConfig {
            enabled: parse_or(&self.enabled, true, parse_bool)?,
            interval,
            threshold: parse_or(&self.threshold, 0, |t| {
                parse_int(t, 0, u64::from(u32::MAX)).map(|n| n as u32)
            })?,
        })
    }
}

impl HealthConfig {
    pub fn to_yaml(&self) -> Printed {
        mapping([(
            "storagedriver",
            mapping([
                ("enabled", flag(self.enabled)),
                ("interval", text(format_duration(self.interval))),
                ("threshold", number(self.threshold)),
            ]),
        )])
    }
}
