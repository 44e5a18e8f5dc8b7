//! Scrub against the real binary: a blob's bytes changed on disk behind berth's back are found by
//! `berth scrub` run beside the serving registry, left in place without `--repair`, quarantined with it
//! (a pull then answers 404 BLOB_UNKNOWN instead of wrong bytes), and a push of the same blob makes it
//! whole again.

use crate::harness::http::BlobPush;
use crate::harness::{Server, repo};

/// `berth scrub` over the server's stores, unthrottled, with `args`; its stdout.
fn scrub(server: &Server, args: &[&str]) -> String {
    server.berth_ok(&[&["scrub", "--rate", "0"], args].concat())
}

#[test]
fn berth_scrub_finds_and_quarantines_bytes_that_rotted() {
    let server = Server::start();
    let api = server.api();
    let r = repo("scrubbed");
    let good = vec![3u8; 50_000];
    let rotten = vec![4u8; 60_000];
    api.push_blob(&r, &good, BlobPush::Monolithic)
        .unwrap_or_else(|e| panic!("push: {e}"));
    let digest = api
        .push_blob(&r, &rotten, BlobPush::Monolithic)
        .unwrap_or_else(|e| panic!("push: {e}"));
    let clean = scrub(&server, &[]);
    assert!(
        clean.contains("scrub verified 2 blobs, 110000 bytes: 0 corrupt"),
        "{clean}"
    );

    // One byte flipped on disk, as a failing disk would.
    let hex = digest.trim_start_matches("sha256:");
    let file = server.root().join("blobs/sha256").join(&hex[..2]).join(hex);
    let mut bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    bytes[1234] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()));

    let found = scrub(&server, &[]);
    assert!(
        found.contains(&format!("corrupt blob {digest}: left in place")),
        "{found}"
    );
    assert!(found.contains("1 corrupt (0 quarantined now)"), "{found}");
    assert!(file.exists(), "without --repair nothing moves");

    let repaired = scrub(&server, &["--repair"]);
    assert!(
        repaired.contains(&format!("corrupt blob {digest}: quarantined")),
        "{repaired}"
    );
    assert!(!file.exists(), "out of the served tree");
    let pulled = api
        .get(&format!("/v2/{r}/blobs/{digest}"), &[])
        .unwrap_or_else(|e| panic!("pull: {e}"));
    assert_eq!(pulled.status, 404, "{}", pulled.describe());
    assert_eq!(pulled.error_codes(), ["BLOB_UNKNOWN"]);

    // Pushed again: whole, and the next scrub finds nothing wrong.
    api.push_blob(&r, &rotten, BlobPush::Monolithic)
        .unwrap_or_else(|e| panic!("push again: {e}"));
    assert_eq!(api.get_ok(&format!("/v2/{r}/blobs/{digest}")), rotten);
    let after = scrub(&server, &[]);
    assert!(after.contains("0 quarantined now"), "{after}");
    assert!(!after.contains("corrupt blob"), "{after}");
}
