//! Wall-clock time as the metadata stores it: whole Unix seconds, and as people read it.

use std::time::{Duration, SystemTime};

/// Seconds since the Unix epoch (a clock before 1970 counts as 0).
pub fn unix_now() -> i64 {
    unix_seconds(Some(SystemTime::now()))
}

/// Unix seconds of `at` (`None`, or a time before the epoch: 0).
pub(crate) fn unix_seconds(at: Option<SystemTime>) -> i64 {
    at.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Unix seconds as `2025-06-01 12:34 UTC`; `None` past what a date can hold (year 9999).
pub fn utc_minute(secs: i64) -> Option<String> {
    let t = ::time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    ))
}

/// `now` less `age`, in Unix seconds, saturating rather than wrapping.
pub(crate) fn seconds_before(now: i64, age: Duration) -> i64 {
    now.saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX))
}
