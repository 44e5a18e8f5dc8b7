//! The timestamp that opens every text line, as `tracing-subscriber`'s `SystemTime` writes it
//! (`2026-11-23T05:54:45.198221Z`, UTC, microseconds), with the date and time of day worked out once per
//! second per thread instead of formatted with eight `{:02}`-style arguments per line (~4% of a cached
//! manifest GET's instructions, callgrind).

use std::cell::RefCell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The text format's [`FormatTime`] (see the module comment).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rfc3339Micros;

/// `YYYY-MM-DDTHH:MM:SS.` of one second since the epoch.
type Prefix = [u8; 20];

thread_local! {
    /// The last second this thread formatted, and its text.
    static LAST: RefCell<Option<(u64, Prefix)>> = const { RefCell::new(None) };
}

impl FormatTime for Rfc3339Micros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = SystemTime::now();
        let Some((micros, prefix)) = now
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| Some((d.subsec_micros(), cached_prefix(d.as_secs())?)))
        else {
            // Before 1970 or after 9999: as tracing writes it (its own rules for such years).
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let mut text = [0u8; 27];
        text[..20].copy_from_slice(&prefix);
        digits(micros, &mut text[20..26]);
        text[26] = b'Z';
        // Only ASCII digits and punctuation were written.
        w.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// The prefix of `secs`, from this thread's cache or worked out and cached; `None` past year 9999.
fn cached_prefix(secs: u64) -> Option<Prefix> {
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((s, p)) = *last
            && s == secs
        {
            return Some(p);
        }
        let p = prefix(secs)?;
        *last = Some((secs, p));
        Some(p)
    })
}

/// `YYYY-MM-DDTHH:MM:SS.` of `secs` since the epoch (UTC); `None` past year 9999.
fn prefix(secs: u64) -> Option<Prefix> {
    let t = ::time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    let mut p = *b"0000-00-00T00:00:00.";
    digits(u32::try_from(t.year()).ok()?, &mut p[0..4]);
    digits(u8::from(t.month()).into(), &mut p[5..7]);
    digits(t.day().into(), &mut p[8..10]);
    digits(t.hour().into(), &mut p[11..13]);
    digits(t.minute().into(), &mut p[14..16]);
    digits(t.second().into(), &mut p[17..19]);
    Some(p)
}

/// `v` in decimal, zero-padded to fill `out` (its low digits if it is longer).
fn digits(mut v: u32, out: &mut [u8]) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(secs: u64) -> String {
        String::from_utf8(prefix(secs).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn dates_and_times_of_known_instants() {
        // Figures from `date -u -d @SECS +%Y-%m-%dT%H:%M:%S`.
        for (secs, want) in [
            (0, "1970-01-01T00:00:00."),
            (951_782_400, "2000-02-29T00:00:00."),
            (951_868_799, "2000-02-29T23:59:59."),
            (1_709_164_800, "2024-02-29T00:00:00."),
            (1_795_412_085, "2026-11-23T05:34:45."),
            (4_102_444_799, "2099-12-31T23:59:59."),
            (4_107_542_400, "2100-03-01T00:00:00."),
            (253_402_300_799, "9999-12-31T23:59:59."),
        ] {
            assert_eq!(text(secs), want, "{secs}");
        }
        assert_eq!(prefix(253_402_300_800), None, "year 10000");
    }

    /// The same text as tracing's own `SystemTime`, taken in the same second.
    #[test]
    fn matches_tracing_system_time() {
        for _ in 0..100 {
            let mut ours = String::new();
            let mut theirs = String::new();
            Rfc3339Micros
                .format_time(&mut Writer::new(&mut ours))
                .unwrap();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            assert_eq!(ours.len(), 27, "{ours}");
            assert_eq!(theirs.len(), 27, "{theirs}");
            assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
            if ours[..19] == theirs[..19] {
                assert!(ours <= theirs, "{ours} after {theirs}");
                return;
            }
            // A second turned between the two: try again.
        }
        panic!("no two readings in the same second");
    }
}
