//! The two timestamp formats S3 speaks: SigV4's `20130524T000000Z` (written on every request) and the
//! ISO 8601 `2013-05-24T00:00:00.000Z` of listings (read to age incomplete multipart uploads for
//! purging). The calendar is the `time` crate's; the formats are fixed, so they are written and read here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC civil date and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Utc {
    pub fn from_system(t: SystemTime) -> Utc {
        // Before 1970 (or past year 9999) only with a broken clock: treated as the epoch.
        let t = t
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .and_then(|s| ::time::OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(::time::OffsetDateTime::UNIX_EPOCH);
        Utc {
            year: i64::from(t.year()),
            month: u8::from(t.month()).into(),
            day: t.day().into(),
            hour: t.hour().into(),
            minute: t.minute().into(),
            second: t.second().into(),
        }
    }

    /// `YYYYMMDD`, the date of a SigV4 credential scope.
    pub fn date_stamp(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }

    /// `YYYYMMDDTHHMMSSZ`, the `x-amz-date` header.
    pub fn amz_date(&self) -> String {
        format!(
            "{}T{:02}{:02}{:02}Z",
            self.date_stamp(),
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` (S3's listing timestamps). Fractions are dropped.
pub(crate) fn parse_iso8601(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u16>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let month = ::time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        ::time::Date::from_calendar_date(year.into(), month, u8::try_from(day).ok()?).ok()?;
    // A leap second counts as the second before it.
    let at = date
        .with_hms(
            u8::try_from(hour).ok()?,
            u8::try_from(minute).ok()?,
            u8::try_from(second.min(59)).ok()?,
        )
        .ok()?
        .assume_utc();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(at.unix_timestamp()).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_amz_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24T00:00:00Z
        assert_eq!(Utc::from_system(t).amz_date(), "20130524T000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661); // 2000-02-29T01:01:01Z
        assert_eq!(Utc::from_system(t).amz_date(), "20000229T010101Z");
        assert_eq!(Utc::from_system(UNIX_EPOCH).date_stamp(), "19700101");
    }

    #[test]
    fn parses_listing_timestamps() {
        let want = UNIX_EPOCH + Duration::from_secs(1_369_353_600 + 45_296);
        assert_eq!(parse_iso8601("2013-05-24T12:34:56.000Z"), Some(want));
        assert_eq!(parse_iso8601("2013-05-24T12:34:56Z"), Some(want));
        for bad in [
            "",
            "2013-05-24",
            "2013-13-24T12:34:56Z",
            "2013-05-24T12:34:56",
            "x013-05-24T12:34:56Z",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }
}
