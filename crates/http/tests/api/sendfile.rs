//! Zero-copy blob downloads on the real server (`sendfile.rs`): over plain HTTP/1.1 a blob GET is sent
//! from the blob's file, byte for byte, on keep-alive connections mixing it with other responses, to
//! clients that read slowly, go away mid-body or stop reading; over h2c and TLS the normal path serves
//! the same bytes. Every blob here is a pattern without zero bytes, so a placeholder byte (zero) that
//! reached a client could not go unnoticed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_http::ServeSettings;
use berth_http::limits::Limits;
use berth_http::metrics::Metrics;
use berth_http::sendfile::bytes_sent;
use berth_http::tls::TlsAcceptor;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use oci::Digest;
use registry::proxy::{CacheEvent, CacheObserver};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::harness::Harness;
use crate::limits::{Running, serve_app};
use crate::proxy::{OneImage, observed_mirror};
use crate::tls::{Ca, Files};

const LIMIT: Duration = Duration::from_secs(30);
const MIB: usize = 1 << 20;

/// `len` bytes of a pattern that never repeats within a frame and holds no zero byte.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| ((i.wrapping_mul(31).wrapping_add(seed) ^ (i >> 11)) % 255 + 1) as u8)
        .collect()
}

/// A harness over fresh storage, and where its blob files are (to see which are open).
async fn harness() -> (Harness, PathBuf) {
    let root = Arc::new(Mutex::new(PathBuf::new()));
    let captured = Arc::clone(&root);
    let h = Harness::with_app(registry::Settings::default(), |registry, dir| async move {
        *captured.lock().unwrap() = dir.join("blobs");
        berth_http::router(registry)
    })
    .await;
    let root = root.lock().unwrap().clone();
    (h, root)
}

/// The files under `root` this process holds open.
fn open_files_under(root: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(root))
        .count()
}

/// Waits (bounded) until no file under `root` is open: the connection that sent them has ended.
async fn until_closed(root: &Path, limit: Duration) -> Duration {
    let started = Instant::now();
    while open_files_under(root) > 0 {
        assert!(
            started.elapsed() < limit,
            "blob files still open after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

fn options(limits: Limits) -> ServeSettings {
    ServeSettings {
        limits,
        ..ServeSettings::default()
    }
}

/// A raw HTTP/1.1 client on one connection, reading responses framed by their Content-Length.
struct Client<S> {
    s: S,
    pending: Vec<u8>,
}

/// One response: its head (status line and headers) and its body.
struct Answer {
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn status(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(s: S) -> Client<S> {
        Client {
            s,
            pending: Vec::new(),
        }
    }

    async fn more(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        let n = self.s.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed the connection mid-response");
        self.pending.extend_from_slice(&buf[..n]);
    }

    /// Sends `method path` with `extra` header lines, and reads the answer (no body for HEAD).
    async fn ask(&mut self, method: &str, path: &str, extra: &str) -> Answer {
        let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n");
        self.s.write_all(req.as_bytes()).await.unwrap();
        tokio::time::timeout(LIMIT, self.answer(method == "HEAD"))
            .await
            .expect("no whole answer in time")
    }

    /// Sends a GET of `path` and reads only the answer's head: the body is the test's to read (or not).
    async fn start_get(&mut self, path: &str) -> Answer {
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        self.s.write_all(req.as_bytes()).await.unwrap();
        self.answer(true).await
    }

    async fn answer(&mut self, head_only: bool) -> Answer {
        let end = loop {
            if let Some(i) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.more().await;
        };
        let head = String::from_utf8(self.pending.drain(..end).collect()).unwrap();
        let mut answer = Answer {
            head,
            body: Vec::new(),
        };
        let len: usize = answer
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if !head_only {
            while self.pending.len() < len {
                self.more().await;
            }
            answer.body = self.pending.drain(..len).collect();
        }
        answer
    }
}

async fn plain(addr: SocketAddr) -> Client<TcpStream> {
    Client::new(TcpStream::connect(addr).await.unwrap())
}

fn blob_path(digest: &Digest) -> String {
    format!("/v2/sf/test/blobs/{digest}")
}

#[tokio::test]
async fn keep_alive_gets_heads_and_ranges_are_sent_from_the_file_byte_for_byte() {
    let (h, _) = harness().await;
    let big = pattern(3 * MIB + 12345, 1);
    let small = pattern(1000, 2);
    let big_digest = h.push_blob("sf/test", &big).await;
    let small_digest = h.push_blob("sf/test", &small).await;
    let running = serve_app(h.app.clone(), ServeSettings::default()).await;
    let before = bytes_sent();

    let mut c = plain(running.addr).await;
    let a = c.ask("GET", &blob_path(&big_digest), "").await;
    assert_eq!(a.status(), "200");
    assert!(a.body == big, "the whole blob, byte for byte");
    let a = c.ask("HEAD", &blob_path(&big_digest), "").await;
    assert_eq!(a.header("content-length"), Some(&*big.len().to_string()));
    // A response that is not a file between two that are.
    let a = c.ask("GET", "/v2/", "").await;
    assert_eq!(a.status(), "200");
    let a = c
        .ask(
            "GET",
            &blob_path(&big_digest),
            "Range: bytes=100-2000000\r\n",
        )
        .await;
    assert_eq!(a.status(), "206");
    assert!(a.body == big[100..2_000_001], "a range, byte for byte");
    let a = c.ask("GET", &blob_path(&small_digest), "").await;
    assert_eq!(a.body, small);
    let a = c.ask("HEAD", &blob_path(&small_digest), "").await;
    assert_eq!(a.header("content-length"), Some("1000"));
    let a = c
        .ask("GET", &blob_path(&big_digest), "Range: bytes=-5\r\n")
        .await;
    assert_eq!(a.body, big[big.len() - 5..]);
    let a = c.ask("GET", &blob_path(&small_digest), "").await;
    assert_eq!(a.body, small);

    // Every body byte of those blob GETs went out through sendfile.
    let blob_bytes = big.len() + 1_999_901 + small.len() + 5 + small.len();
    assert!(
        bytes_sent() - before >= blob_bytes as u64,
        "sent {} bytes with sendfile, served {blob_bytes}",
        bytes_sent() - before
    );
    drop(c);
    running.stop().await;
}

/// Sums the blob bytes a pull-through cache reports as served from it.
#[derive(Default)]
struct ServedFromCache(AtomicU64);

impl CacheObserver for ServedFromCache {
    fn event(&self, event: CacheEvent) {
        if let CacheEvent::ServedBytes(n) = event {
            self.0.fetch_add(n, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn a_pull_through_cache_hit_is_sent_from_the_file_and_counted_as_served_from_the_cache() {
    let up = OneImage::new();
    let served = Arc::new(ServedFromCache::default());
    let h = observed_mirror(&up, Some(served.clone())).await;
    let running = serve_app(h.app.clone(), ServeSettings::default()).await;
    let path = format!(
        "/v2/docker.io/library/alpine/blobs/{}",
        Digest::sha256_of(&up.layer)
    );
    let mut c = plain(running.addr).await;

    // The first GET is a miss: the fetch streams the upstream's bytes, nothing of it is a file yet.
    let miss = c.ask("GET", &path, "").await;
    assert_eq!(miss.status(), "200");
    assert_eq!(miss.body, up.layer);
    // The fetch links the blob just after its readers are done; from then on GETs are hits.
    let started = Instant::now();
    let hit = loop {
        let before = bytes_sent();
        let a = c.ask("GET", &path, "").await;
        assert_eq!(a.status(), "200");
        assert_eq!(a.body, up.layer);
        if bytes_sent() - before == up.layer.len() as u64 {
            break a;
        }
        assert!(
            started.elapsed() < LIMIT,
            "no cache hit was sent from the file"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        hit.header("content-length"),
        Some(&*up.layer.len().to_string())
    );
    // Every hit counted its bytes as served from the cache, the one sent from the file included.
    let hits_before_it = served.0.load(Ordering::SeqCst) / up.layer.len() as u64;
    assert!(hits_before_it >= 1);
    assert_eq!(
        served.0.load(Ordering::SeqCst) % up.layer.len() as u64,
        0,
        "whole blobs counted"
    );
    let before = served.0.load(Ordering::SeqCst);
    c.ask("GET", &path, "").await;
    assert_eq!(
        served.0.load(Ordering::SeqCst) - before,
        up.layer.len() as u64
    );
    drop(c);
    running.stop().await;
}

#[tokio::test]
async fn pipelined_requests_get_their_own_bytes_in_order() {
    let (h, _) = harness().await;
    let one = pattern(2 * MIB + 1, 11);
    let two = pattern(MIB + 17, 12);
    let one_digest = h.push_blob("sf/test", &one).await;
    let two_digest = h.push_blob("sf/test", &two).await;
    let running = serve_app(h.app.clone(), ServeSettings::default()).await;

    // Every request in one write: hyper may read the next head while a body is still being sent.
    let mut c = plain(running.addr).await;
    let reqs = [
        format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", blob_path(&one_digest)),
        "GET /v2/ HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
        format!(
            "GET {} HTTP/1.1\r\nHost: t\r\nRange: bytes=3-\r\n\r\n",
            blob_path(&two_digest)
        ),
        format!(
            "HEAD {} HTTP/1.1\r\nHost: t\r\n\r\n",
            blob_path(&one_digest)
        ),
        format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", blob_path(&two_digest)),
    ];
    c.s.write_all(reqs.concat().as_bytes()).await.unwrap();
    let read = async {
        let a = c.answer(false).await;
        assert!(a.body == one, "first blob");
        assert_eq!(c.answer(false).await.status(), "200");
        let a = c.answer(false).await;
        assert!(a.body == two[3..], "range of the second blob");
        let a = c.answer(true).await;
        assert_eq!(a.header("content-length"), Some(&*one.len().to_string()));
        let a = c.answer(false).await;
        assert!(a.body == two, "second blob");
    };
    tokio::time::timeout(LIMIT, read).await.unwrap();
    drop(c);
    running.stop().await;
}

#[tokio::test]
async fn a_blob_larger_than_the_socket_buffers_read_slowly_arrives_whole() {
    let (h, _) = harness().await;
    let data = pattern(12 * MIB + 7, 3);
    let digest = h.push_blob("sf/test", &data).await;
    let running = serve_app(h.app.clone(), ServeSettings::default()).await;
    let before = bytes_sent();

    // A small receive window, drained a little at a time: the server's sends are partial, many times.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let s = socket.connect(running.addr).await.unwrap();
    let mut c = Client::new(s);
    let req = format!("GET {} HTTP/1.1\r\nHost: test\r\n\r\n", blob_path(&digest));
    c.s.write_all(req.as_bytes()).await.unwrap();
    let read = async {
        let mut body = Vec::new();
        let a = c.answer(true).await;
        body.append(&mut c.pending);
        let mut buf = vec![0u8; 32 * 1024];
        while body.len() < data.len() {
            let n = c.s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {} bytes", body.len());
            body.extend_from_slice(&buf[..n]);
            if body.len() % (256 * 1024) < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        (a, body)
    };
    let (a, body) = tokio::time::timeout(LIMIT, read).await.unwrap();
    assert_eq!(a.status(), "200");
    assert_eq!(body.len(), data.len());
    assert!(body == data, "byte for byte");
    assert!(bytes_sent() - before >= data.len() as u64);

    // The connection is still good for the next request.
    let a = c
        .ask("GET", &blob_path(&digest), "Range: bytes=5-9\r\n")
        .await;
    assert_eq!(a.body, data[5..10]);
    drop(c);
    running.stop().await;
}

#[tokio::test]
async fn a_client_gone_mid_body_ends_its_connection_and_frees_the_file() {
    let (h, root) = harness().await;
    let data = pattern(32 * MIB, 4);
    let digest = h.push_blob("sf/test", &data).await;
    // One connection at a time: the next client is served only once the first one's task has ended.
    let limits = Limits {
        max_connections: 1,
        ..Limits::default()
    };
    let running = serve_app(h.app.clone(), options(limits)).await;

    let mut c = plain(running.addr).await;
    let a = c.start_get(&blob_path(&digest)).await;
    assert_eq!(a.status(), "200");
    while c.pending.len() < MIB {
        c.more().await;
    }
    assert!(!c.pending.contains(&0));
    drop(c);

    until_closed(&root, LIMIT).await;
    let mut next = plain(running.addr).await;
    let a = next
        .ask("GET", &blob_path(&digest), "Range: bytes=0-99\r\n")
        .await;
    assert_eq!(a.body, data[..100]);
    drop(next);
    running.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_after_the_stall_timeout() {
    let (h, root) = harness().await;
    let data = pattern(48 * MIB, 5);
    let digest = h.push_blob("sf/test", &data).await;
    let limits = Limits {
        stall_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let running = serve_app(h.app.clone(), options(limits)).await;

    let mut c = plain(running.addr).await;
    let a = c.start_get(&blob_path(&digest)).await;
    assert_eq!(a.status(), "200");
    // Reads nothing more: the socket buffers fill, and sendfile can send no more.
    let took = until_closed(&root, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");

    // What was in flight arrives, then the connection ends short of the blob.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(LIMIT, c.s.read_to_end(&mut rest)).await;
    let got = c.pending.len() + rest.len();
    assert!(got < data.len(), "{got} bytes of {}", data.len());
    assert!(!rest.contains(&0));
    running.stop().await;
}

#[tokio::test]
async fn a_download_in_flight_finishes_during_a_graceful_shutdown() {
    let (h, root) = harness().await;
    let data = pattern(16 * MIB, 6);
    let digest = h.push_blob("sf/test", &data).await;
    let running = serve_app(h.app.clone(), ServeSettings::default()).await;

    let mut c = plain(running.addr).await;
    let a = c.start_get(&blob_path(&digest)).await;
    assert_eq!(a.status(), "200");
    // The server is told to stop while most of the body is still to be sent...
    let stopping = tokio::spawn(running.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...and the download still completes, byte for byte, before the server returns.
    let mut body = std::mem::take(&mut c.pending);
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, c.s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    body.extend(rest);
    assert!(body == data, "{} bytes of {}", body.len(), data.len());
    tokio::time::timeout(LIMIT, stopping)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open_files_under(&root), 0);
}

#[tokio::test]
async fn h2c_downloads_take_the_normal_path_byte_for_byte() {
    let (h, _) = harness().await;
    let data = pattern(3 * MIB + 1, 7);
    let digest = h.push_blob("sf/test", &data).await;
    let running = serve_app(h.app.clone(), ServeSettings::default()).await;

    let tcp = TcpStream::connect(running.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let driver = tokio::spawn(conn);
    for (range, want) in [
        (None, &data[..]),
        (Some("bytes=10-2000000"), &data[10..2_000_001]),
    ] {
        let mut req =
            axum::http::Request::get(format!("http://{}{}", running.addr, blob_path(&digest)));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let resp = send
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.version(), axum::http::Version::HTTP_2);
        let body = tokio::time::timeout(LIMIT, resp.into_body().collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        assert!(body == want, "{range:?}: {} bytes", body.len());
    }
    drop(send);
    let _ = driver.await;
    running.stop().await;
}

#[tokio::test]
async fn tls_downloads_take_the_normal_path_byte_for_byte() {
    let (h, _) = harness().await;
    let data = pattern(3 * MIB + 2, 8);
    let digest = h.push_blob("sf/test", &data).await;
    let ca = Ca::new("test CA");
    let files = Files::new(&ca.server());
    let options = ServeSettings {
        tls: Some(TlsAcceptor::new(&files.settings()).unwrap()),
        ..ServeSettings::default()
    };
    let running: Running = serve_app(h.app.clone(), options).await;

    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(running.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let mut c = Client::new(tls);
    let a = c.ask("GET", &blob_path(&digest), "").await;
    assert!(a.body == data, "the whole blob, byte for byte");
    let a = c
        .ask("GET", &blob_path(&digest), "Range: bytes=7-1000006\r\n")
        .await;
    assert!(a.body == data[7..1_000_007], "a range, byte for byte");
    drop(c);
    running.stop().await;
}

#[tokio::test]
async fn the_metrics_count_the_bytes_sent_from_the_file() {
    let metrics = Metrics::new();
    let instrumented = metrics.clone();
    let h = Harness::with_app(registry::Settings::default(), |registry, _| async move {
        instrumented.instrument(berth_http::router(registry))
    })
    .await;
    let data = pattern(MIB + 3, 9);
    let digest = h.push_blob("sf/test", &data).await;
    let running = serve_app(h.app.clone(), ServeSettings::default()).await;
    let before = bytes_sent();

    let mut c = plain(running.addr).await;
    let a = c.ask("GET", &blob_path(&digest), "").await;
    assert!(a.body == data);
    let a = c
        .ask("GET", &blob_path(&digest), "Range: bytes=0-999\r\n")
        .await;
    assert_eq!(a.body, data[..1000]);
    assert!(bytes_sent() - before >= data.len() as u64 + 1000);

    // The count is taken as the body ends, just after the last byte was handed over.
    let key = r#"berth_http_sent_bytes_total{endpoint="blob"}"#;
    let want = (data.len() + 1000) as f64;
    let started = Instant::now();
    loop {
        let text = metrics.render().unwrap();
        let sent = text.lines().find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == key).then(|| v.parse::<f64>().ok())?
        });
        if sent == Some(want) {
            break;
        }
        assert!(started.elapsed() < LIMIT, "{key} = {sent:?}, want {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(c);
    running.stop().await;
}
