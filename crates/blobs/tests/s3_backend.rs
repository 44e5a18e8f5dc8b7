//! What only the S3 backend has: part objects and their boundaries, replicas sharing a bucket, purging
//! of crashed commits, retries and unavailability. Against the server `BERTH_TEST_S3_*` names (Garage
//! in `scripts/test`), each test under its own root; without it they print that they skipped (and fail
//! under CI). The retry and unavailability tests need no server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use berth_blobs::s3::testing::{
    multipart_uploads, object_keys, start_abandoned_commit, test_server_settings,
};
use berth_blobs::s3::{S3BlobStore, S3Settings};
use berth_blobs::testsuite::{Pattern, chunked, failing, read_upload};
use berth_blobs::{BlobStore, Error, UploadId};
use oci::{Digest, DigestAlgorithm};

/// A part size far below S3's 5 MiB minimum, so that a few hundred KiB span many parts. Garage
/// accepts small parts; AWS would refuse to complete such an upload.
const SMALL: u64 = 64 * 1024;

fn settings(chunk: u64) -> Option<S3Settings> {
    let mut s = test_server_settings()?;
    s.chunk_size = chunk;
    Some(s)
}

fn open(s: &S3Settings) -> S3BlobStore {
    S3BlobStore::open(s).unwrap_or_else(|e| panic!("opening the store: {e}"))
}

async fn write(
    store: &S3BlobStore,
    id: &UploadId,
    p: &Pattern,
    range: std::ops::Range<u64>,
) -> u64 {
    let start = range.start;
    store
        .upload_write(id, start, p.stream(range, &[7_000, 65_536, 1, 100_003]))
        .await
        .unwrap_or_else(|e| panic!("upload_write at {start}: {e}"))
}

async fn commit(store: &S3BlobStore, id: &UploadId, p: &Pattern, len: u64) -> Digest {
    let digest = p.digest(DigestAlgorithm::Sha256, len);
    store
        .upload_commit(id, len, &digest)
        .await
        .unwrap_or_else(|e| panic!("commit: {e}"));
    digest
}

/// A write that fails after several whole parts reached S3 is discarded entirely: the upload resumes at
/// the recorded offset, the failed write's parts are gone, and the blob holds the right bytes.
#[tokio::test]
async fn a_write_failing_after_whole_parts_is_discarded() {
    let Some(s) = settings(SMALL) else { return };
    let store = open(&s);
    let p = Pattern::new(1);
    let id = UploadId::random();
    let recorded = 2 * SMALL + SMALL / 2;
    assert_eq!(write(&store, &id, &p, 0..recorded).await, recorded);

    // Three and a half parts of junk, then the client hangs up.
    let junk = Pattern::new(2).bytes(0..3 * SMALL + SMALL / 2);
    let bad = failing(junk.chunks(10_000).map(bytes::Bytes::copy_from_slice));
    assert!(matches!(
        store.upload_write(&id, recorded, bad).await,
        Err(Error::Source(_))
    ));

    let end = recorded + SMALL + 5;
    assert_eq!(write(&store, &id, &p, recorded..end).await, end);
    match store.upload_write(&id, end + 1, chunked(b"x", 1)).await {
        Err(Error::UploadOffset { have, .. }) => assert_eq!(have, end, "the junk's parts are gone"),
        other => panic!("want UploadOffset, got {other:?}"),
    }
    let digest = commit(&store, &id, &p, end).await;
    let blob = store
        .read(&digest, None)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no blob"));
    p.assert_stream(blob.body, 0..end, "blob after a failed write")
        .await;
    // The commit removed every part object; only the blob is left.
    let keys = object_keys(&store)
        .await
        .unwrap_or_else(|e| panic!("listing: {e}"));
    assert_eq!(keys.len(), 1, "{keys:?}");
}

/// PATCH on one replica, PATCH on another, PUT on the first, read on the second: the state is all in
/// the bucket. Offsets fall inside parts, so each replica reads back the start of a part it did not write.
#[tokio::test]
async fn replicas_continue_each_others_uploads() {
    let Some(s) = settings(SMALL) else { return };
    let (a, b) = (open(&s), open(&s));
    let p = Pattern::new(3);
    let id = UploadId::random();
    let cuts = [0, SMALL / 3, 2 * SMALL + 17, 5 * SMALL, 7 * SMALL - 1];
    for (i, w) in cuts.windows(2).enumerate() {
        let store = if i % 2 == 0 { &a } else { &b };
        assert_eq!(write(store, &id, &p, w[0]..w[1]).await, w[1], "write {i}");
    }
    let len = cuts[cuts.len() - 1];
    p.assert_stream(
        b.upload_read(&id, len)
            .await
            .unwrap_or_else(|e| panic!("upload_read: {e}")),
        0..len,
        "upload read on the other replica",
    )
    .await;
    let digest = commit(&a, &id, &p, len).await;
    let blob = b
        .read(&digest, None)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no blob on b"));
    assert_eq!(blob.size, len);
    p.assert_stream(blob.body, 0..len, "blob read on the other replica")
        .await;
}

/// A replica configured with another `chunksize` continues an upload with the part size it was started
/// with (it is in the keys); a restart at offset 0 takes the replica's own.
#[tokio::test]
async fn an_upload_keeps_its_part_size_across_replicas() {
    let Some(small) = settings(SMALL) else { return };
    let mut other = small.clone();
    other.chunk_size = 3 * SMALL;
    let (a, b) = (open(&small), open(&other));
    let p = Pattern::new(4);
    let id = UploadId::random();
    assert_eq!(write(&a, &id, &p, 0..SMALL + 10).await, SMALL + 10);
    assert_eq!(write(&b, &id, &p, SMALL + 10..4 * SMALL).await, 4 * SMALL);
    let keys = object_keys(&a)
        .await
        .unwrap_or_else(|e| panic!("listing: {e}"));
    assert_eq!(keys.len(), 4, "four parts of 64 KiB: {keys:?}");
    assert!(
        keys.iter().all(|k| k.contains(&format!("/{SMALL}/"))),
        "{keys:?}"
    );
    assert_same_upload(&b, &id, &p, 4 * SMALL).await;

    // Starting over at 0 on b: b's part size, and nothing of the old parts is left.
    assert_eq!(write(&b, &id, &p, 0..SMALL).await, SMALL);
    let keys = object_keys(&a)
        .await
        .unwrap_or_else(|e| panic!("listing: {e}"));
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].contains(&format!("/{}/", 3 * SMALL)), "{keys:?}");
}

async fn assert_same_upload(store: &S3BlobStore, id: &UploadId, p: &Pattern, len: u64) {
    let got = read_upload(store, id, len).await;
    assert!(got == p.bytes(0..len), "upload bytes differ");
}

/// A blob of many parts: ranges across the parts' boundaries, through `upload_read` before the commit
/// (part objects) and `read` after it (one object assembled by server-side copies).
#[tokio::test]
async fn ranges_across_part_boundaries() {
    let Some(s) = settings(SMALL) else { return };
    let store = open(&s);
    let p = Pattern::new(5);
    let id = UploadId::random();
    let len = 9 * SMALL + 1234;
    assert_eq!(write(&store, &id, &p, 0..len).await, len);
    p.assert_stream(
        store
            .upload_read(&id, 3 * SMALL + 1)
            .await
            .unwrap_or_else(|e| panic!("upload_read: {e}")),
        0..3 * SMALL + 1,
        "a prefix ending one byte into a part",
    )
    .await;
    let digest = commit(&store, &id, &p, len).await;
    assert_eq!(store.stat(&digest).await.ok(), Some(Some(len)));
    for range in [
        SMALL - 1..SMALL + 1,
        2 * SMALL - 5..6 * SMALL + 5,
        8 * SMALL..len,
        0..len,
    ] {
        let r = store
            .read(&digest, Some(range.clone()))
            .await
            .ok()
            .flatten();
        let r = r.unwrap_or_else(|| panic!("no blob for {range:?}"));
        assert_eq!(r.size, len);
        p.assert_stream(r.body, range.clone(), &format!("range {range:?}"))
            .await;
    }
}

/// A commit whose length ends inside a part copies only that part's beginning.
#[tokio::test]
async fn commit_of_a_prefix_ending_inside_a_part() {
    let Some(s) = settings(SMALL) else { return };
    let store = open(&s);
    let p = Pattern::new(6);
    let id = UploadId::random();
    assert_eq!(write(&store, &id, &p, 0..4 * SMALL).await, 4 * SMALL);
    let len = 2 * SMALL + 99;
    let digest = commit(&store, &id, &p, len).await;
    let blob = store
        .read(&digest, None)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no blob"));
    assert_eq!(blob.size, len);
    p.assert_stream(blob.body, 0..len, "prefix blob").await;
}

/// At S3's real part size, a blob one byte longer than a part: its last piece is a one-byte object,
/// which Garage keeps inline and will not copy from, so the commit sends it as bytes.
#[tokio::test]
async fn a_blob_one_byte_past_a_part() {
    let Some(s) = settings(berth_blobs::s3::MIN_CHUNK_SIZE) else {
        return;
    };
    let store = open(&s);
    let p = Pattern::new(8);
    let id = UploadId::random();
    let len = berth_blobs::s3::MIN_CHUNK_SIZE + 1;
    assert_eq!(write(&store, &id, &p, 0..len).await, len);
    let digest = commit(&store, &id, &p, len).await;
    let blob = store.read(&digest, Some(len - 2..len)).await.ok().flatten();
    let blob = blob.unwrap_or_else(|| panic!("no blob"));
    assert_eq!(blob.size, len);
    p.assert_stream(blob.body, len - 2..len, "the last bytes")
        .await;
}

/// purge_temporary aborts a crashed commit's multipart upload once it is older than the cutoff (and a
/// dry run only reports it), and leaves upload sessions' parts alone.
#[tokio::test]
async fn purge_aborts_abandoned_commits() {
    let Some(s) = settings(SMALL) else { return };
    let store = open(&s);
    let digest = Digest::sha256_of(b"never finished");
    let upload_id = start_abandoned_commit(&store, &digest)
        .await
        .unwrap_or_else(|e| panic!("starting a multipart upload: {e}"));
    let p = Pattern::new(7);
    let session = UploadId::random();
    assert_eq!(
        write(&store, &session, &p, 0..2 * SMALL + 3).await,
        2 * SMALL + 3
    );

    let past = SystemTime::now() - Duration::from_secs(3600);
    let none = store
        .purge_temporary(past, false)
        .await
        .unwrap_or_else(|e| panic!("purge: {e}"));
    assert!(none.is_empty(), "a young upload is kept: {none:?}");

    let future = SystemTime::now() + Duration::from_secs(3600);
    let dry = store
        .purge_temporary(future, true)
        .await
        .unwrap_or_else(|e| panic!("dry run: {e}"));
    assert_eq!(dry.len(), 1, "{dry:?}");
    assert!(dry[0].contains(&upload_id), "{dry:?}");
    let left = multipart_uploads(&store)
        .await
        .unwrap_or_else(|e| panic!("listing: {e}"));
    assert_eq!(
        left,
        std::slice::from_ref(&upload_id),
        "a dry run aborts nothing"
    );

    let purged = store
        .purge_temporary(future, false)
        .await
        .unwrap_or_else(|e| panic!("purge: {e}"));
    assert_eq!(purged, dry);
    let left = multipart_uploads(&store)
        .await
        .unwrap_or_else(|e| panic!("listing: {e}"));
    assert!(left.is_empty(), "{left:?}");
    assert_same_upload(&store, &session, &p, 2 * SMALL + 3).await;
}

/// Settings for an endpoint on this machine that is not an S3 server, with quick retries.
fn local_settings(port: u16, attempts: u32) -> S3Settings {
    let mut s = S3Settings::for_test_server(
        &format!("http://127.0.0.1:{port}"),
        "r",
        "b",
        "ak",
        "sk",
        "root",
    );
    s.attempts = attempts;
    s.request_timeout = Duration::from_secs(5);
    s
}

/// Every operation reports an endpoint nobody listens on as `Unavailable` (a 503 to clients), after
/// its retries.
#[tokio::test]
async fn unavailable_when_the_endpoint_is_down() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("addr: {e}"))
    };
    let store = open(&local_settings(port, 2));
    let digest = Digest::sha256_of(b"x");
    let id = UploadId::random();
    let results = [
        store.check().await.err(),
        store.stat(&digest).await.err(),
        store.read(&digest, None).await.err(),
        store.upload_write(&id, 0, chunked(b"abc", 1)).await.err(),
        store.upload_commit(&id, 3, &digest).await.err(),
        store.purge_temporary(SystemTime::now(), true).await.err(),
    ];
    for (i, r) in results.into_iter().enumerate() {
        assert!(
            matches!(r, Some(Error::Unavailable(_))),
            "operation {i}: {r:?}"
        );
    }
}

/// A fake endpoint that answers the first `failures` requests with 503 SlowDown, then a HEAD's 200 with
/// a Content-Length of 42. Returns its port and the count of requests it saw.
fn flaky_endpoint(failures: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("addr: {e}"));
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(20) {
            let Ok(mut conn) = conn else { return };
            let mut head = [0u8; 8192];
            // One request per connection: the answer closes it.
            if conn.read(&mut head).unwrap_or(0) == 0 {
                continue;
            }
            let n = count.fetch_add(1, Ordering::SeqCst);
            let answer = if n < failures {
                let body = "<Error><Code>SlowDown</Code><Message>slow down</Message></Error>";
                format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 200 OK\r\nContent-Length: 42\r\nConnection: close\r\n\r\n".to_string()
            };
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    (port, seen)
}

/// 503 SlowDown is retried with backoff until it passes; past the attempts it is `Unavailable`.
#[tokio::test]
async fn slow_down_is_retried() {
    let digest = Digest::sha256_of(b"x");
    let (port, seen) = flaky_endpoint(2);
    let store = open(&local_settings(port, 4));
    assert_eq!(store.stat(&digest).await.ok(), Some(Some(42)));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "two refusals and the answer"
    );

    let (port, seen) = flaky_endpoint(10);
    let store = open(&local_settings(port, 3));
    assert!(matches!(
        store.stat(&digest).await,
        Err(Error::Unavailable(_))
    ));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "as many requests as attempts"
    );
}

/// A GET whose body stops arriving fails with `TimedOut` after the request timeout instead of holding
/// the pull (and its client) forever.
#[tokio::test]
async fn a_stalled_body_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("addr: {e}"));
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let mut head = [0u8; 8192];
        let _ = conn.read(&mut head);
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
        // Holds the connection open, sending nothing more.
        std::thread::sleep(Duration::from_secs(10));
    });
    let mut s = local_settings(port, 1);
    s.request_timeout = Duration::from_millis(500);
    let store = open(&s);
    let started = std::time::Instant::now();
    let reader = store.read(&Digest::sha256_of(b"x"), None).await;
    let reader = reader.ok().flatten().unwrap_or_else(|| panic!("no answer"));
    assert_eq!(reader.size, 100);
    match berth_blobs::testsuite::collect(reader.body).await {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}"),
        Ok(bytes) => panic!("a stalled body ended with {} bytes", bytes.len()),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A presigned URL fetches the blob from the bucket with no credentials of its own (the building block
/// of redirecting blob reads to the storage).
#[tokio::test]
async fn a_presigned_url_reads_the_blob() {
    let Some(s) = settings(SMALL) else { return };
    let store = open(&s);
    let data = Pattern::new(9).bytes(0..5000);
    let digest = berth_blobs::testsuite::put(&store, &data).await;
    // Through the trait, as the registry asks for it.
    let url = store.redirect_url(&digest, Duration::from_secs(60)).await;
    let url = url
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("the S3 store has redirect URLs"));
    let (status, body) = http_get(&url);
    assert_eq!(status, 200, "{url}");
    assert!(body == data, "the presigned URL gave other bytes");
    // Tampering with the signed key is refused.
    let other_digest = Digest::sha256_of(b"other");
    let other = url.replacen(digest.hex(), other_digest.hex(), 1);
    assert_eq!(http_get(&other).0, 403, "{other}");
}

/// A plain HTTP/1.1 GET of an `http://host:port/path?query` URL: (status, body).
fn http_get(url: &str) -> (u16, Vec<u8>) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not http: {url}"));
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut conn =
        std::net::TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("send: {e}"));
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)
        .unwrap_or_else(|e| panic!("receive: {e}"));
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head"));
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = answer[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 4 + size..];
    }
    out
}
