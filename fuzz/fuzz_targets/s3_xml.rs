//! The reader of S3's XML answers (`crates/blobs/src/s3/xml.rs`) and of their timestamps
//! (`s3/time.rs`), through `blobs::s3::fuzzing`, over an answer as a bucket (or something posing as one)
//! might send it.
//!
//! Checked: no panic; every block is a slice of the answer, and the blocks of one element do not overlap
//! and come in document order; an element's text is its first block unescaped; escaping then unescaping
//! gives back any text; the answer read as the API reads a listing (`Contents`, `Upload`, `Error` blocks,
//! their `Key`, `Size`, `LastModified`...) panics nowhere; and a listing timestamp that names a real
//! instant converts back to the same date and time.

#![no_main]

use blobs::s3::fuzzing::{blocks, civil, escape, parse_iso8601, text, unescape};
use libfuzzer_sys::fuzz_target;

const TAGS: &[&str] = &[
    "Contents",
    "Key",
    "Size",
    "LastModified",
    "IsTruncated",
    "NextContinuationToken",
    "Upload",
    "UploadId",
    "Initiated",
    "NextKeyMarker",
    "NextUploadIdMarker",
    "ETag",
    "Error",
    "Code",
    "Message",
];

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    for tag in TAGS {
        check_blocks(xml, tag);
        assert_eq!(
            text(xml, tag),
            blocks(xml, tag).first().map(|b| unescape(b))
        );
    }
    // As api.rs reads a listing and a multipart listing, block by block.
    for block in blocks(xml, "Contents")
        .into_iter()
        .chain(blocks(xml, "Upload"))
    {
        let _ = text(block, "Key");
        let _ = text(block, "Size").and_then(|s| s.parse::<u64>().ok());
        for stamp in [text(block, "LastModified"), text(block, "Initiated")]
            .into_iter()
            .flatten()
        {
            check_timestamp(&stamp);
        }
    }
    check_timestamp(xml);
    assert_eq!(unescape(&escape(xml)), xml);
});

fn check_blocks(xml: &str, tag: &str) {
    let start = xml.as_ptr() as usize;
    let mut at = 0;
    for block in blocks(xml, tag) {
        if block.is_empty() {
            continue;
        }
        let offset = block.as_ptr() as usize - start;
        assert!(
            offset + block.len() <= xml.len(),
            "a block outside the answer"
        );
        assert!(offset >= at, "blocks overlap or go backwards");
        at = offset + block.len();
    }
}

fn check_timestamp(s: &str) {
    let Some(t) = parse_iso8601(s) else {
        return;
    };
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().expect("parsed once already");
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    assert!(b.len() >= 20 && b[10] == b'T' && s.ends_with('Z'), "{s:?}");
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    // A real date and time (not Feb 30, not a leap second) reads back as itself.
    if day <= days_in_month && second < 60 {
        assert_eq!(
            civil(t),
            (i64::from(year), month, day, hour, minute, second),
            "{s:?}"
        );
    }
}
