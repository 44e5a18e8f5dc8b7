//! berth's `gc` section: garbage collection while serving (registry:2 has no such section; its
//! `registry garbage-collect` needs the registry stopped or read-only).
//!
//! ```yaml
//! gc:
//!   enabled: true     # sweep on a schedule (default true)
//!   interval: 24h     # how often (default 24h)
//!   grace: 1h         # how long a blob nothing references stays (default 1h)
//!   deleteuntagged: false  # also delete the manifests no tag reaches (default false)
//! ```
//!
//! The grace period is also what `berth garbage-collect` uses unless `--grace` says otherwise. It
//! protects pushes in flight: a layer uploaded before its manifest is unreferenced until the manifest
//! arrives, and stays for at least this long.

use std::time::Duration;

use super::read::{Section, Setting, parse_or};
use super::values::{format_duration, parse_bool, parse_duration};
use super::yaml::{Printed, flag, text};
use super::{ConfigError, mapping};

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcConfig {
    /// Sweep every this long while serving; `None` when `enabled: false`.
    pub interval: Option<Duration>,
    pub grace: Duration,
    /// `deleteuntagged`: scheduled sweeps also delete the manifests no tag reaches.
    pub delete_untagged: bool,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval: Some(DEFAULT_INTERVAL),
            grace: DEFAULT_GRACE,
            delete_untagged: false,
        }
    }
}

pub fn read(mut s: Section<'_>) -> Result<GcConfig, ConfigError> {
    let (enabled, interval, grace): (Option<Setting>, Option<Setting>, Option<Setting>) = (
        s.scalar("enabled")?,
        s.scalar("interval")?,
        s.scalar("grace")?,
    );
    let untagged = s.scalar("deleteuntagged")?;
    s.finish();
    let interval = parse_or(&interval, DEFAULT_INTERVAL, |t| match parse_duration(t)? {
        d if d < Duration::from_secs(60) => Err("must be at least 1m".to_string()),
        d => Ok(d),
    })?;
    Ok(GcConfig {
        interval: parse_or(&enabled, true, parse_bool)?.then_some(interval),
        grace: parse_or(&grace, DEFAULT_GRACE, parse_duration)?,
        delete_untagged: parse_or(&untagged, false, parse_bool)?,
    })
}

impl GcConfig {
    pub fn to_yaml(&self) -> Printed {
        mapping([
            ("enabled", flag(self.interval.is_some())),
            (
                "interval",
                text(format_duration(self.interval.unwrap_or(DEFAULT_INTERVAL))),
            ),
            ("grace", text(format_duration(self.grace))),
            ("deleteuntagged", flag(self.delete_untagged)),
        ])
    }
}
