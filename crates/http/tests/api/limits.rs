//! The limits on the real server, over raw TCP: slowloris heads, idle connections, the connection cap,
//! stalled bodies and stalled readers, the concurrent-upload cap (429), and the bounded graceful shutdown.
//! Each test shrinks the limit it checks to a second or so, and asserts both that the limit acts and
//! that it does not act early.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use berth_http::ServeSettings;
use berth_http::limits::Limits;
use registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::harness::Harness;

/// A server running `app` on 127.0.0.1:0.
pub struct Running {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Signals shutdown and waits (bounded) for `serve` to return.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let result = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("serve did not return after shutdown");
        assert!(matches!(result, Ok(Ok(()))), "{result:?}");
    }
}

pub async fn serve_app(app: Router, options: ServeSettings) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(berth_http::serve_with(
        listener,
        app,
        async move {
            let _ = stopped.await;
        },
        options,
    ));
    Running { addr, stop, task }
}

fn with(limits: Limits) -> ServeSettings {
    ServeSettings {
        limits,
        ..ServeSettings::default()
    }
}

/// Limits where nothing times out within a test, to change one at a time.
fn patient() -> Limits {
    Limits {
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        stall_timeout: Duration::from_secs(60),
        ..Limits::default()
    }
}

/// Reads until the server closes the connection (or resets it); returns what arrived and when it closed.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> (String, Instant) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            n = s.read(&mut buf) => match n {
                Ok(0) | Err(_) => return (String::from_utf8_lossy(&out).into_owned(), Instant::now()),
                Ok(n) => out.extend_from_slice(&buf[..n]),
            },
            _ = &mut deadline => panic!(
                "the connection stayed open for {limit:?}; received {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// Reads one response head (and whatever body came with it in the same reads) within `limit`.
pub async fn read_head(s: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !out.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

const GET_BASE: &[u8] = b"GET /v2/ HTTP/1.1\r\nHost: test\r\n\r\n";

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_cut_off() {
    let h = Harness::new();
    let limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        ..patient()
    };
    let running = serve_app(h.app.clone(), with(limits)).await;
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    let started = Instant::now();
    // A slowloris client: a new header byte every 100 ms, forever.
    let (mut rd, mut wr) = s.split();
    let trickle = async {
        wr.write_all(b"GET /v2/ HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            .await
            .ok();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if wr.write_all(b"a").await.is_err() {
                break;
            }
        }
    };
    let closed = async {
        let mut buf = [0u8; 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    };
    let closed_at = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            at = closed => at,
            _ = trickle => Instant::now(),
        }
    })
    .await
    .expect("a slowloris head kept its connection for 10 s");
    let lasted = closed_at - started;
    assert!(
        lasted >= Duration::from_millis(900),
        "closed early: {lasted:?}"
    );
    // A complete head is still served.
    let mut ok = TcpStream::connect(running.addr).await.unwrap();
    ok.write_all(GET_BASE).await.unwrap();
    let head = read_head(&mut ok, Duration::from_secs(5)).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    running.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let h = Harness::new();
    let limits = Limits {
        idle_timeout: Duration::from_secs(1),
        ..patient()
    };
    let running = serve_app(h.app.clone(), with(limits)).await;

    // After a request, a keep-alive connection that asks nothing more is closed after the idle timeout
    // (and not before).
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    s.write_all(GET_BASE).await.unwrap();
    let head = read_head(&mut s, Duration::from_secs(5)).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let answered = Instant::now();
    let (_, closed) = until_closed(&mut s, Duration::from_secs(10)).await;
    let idle = closed - answered;
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(5),
        "closed after {idle:?} idle"
    );

    // A connection that never sends anything is closed too.
    let mut silent = TcpStream::connect(running.addr).await.unwrap();
    let opened = Instant::now();
    let (_, closed) = until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(closed - opened >= Duration::from_millis(900));
    running.stop().await;
}

#[tokio::test]
async fn the_connection_cap_holds_and_frees_slots() {
    let (_dir, registry, app) = registry_with_upload_cap(10);
    let limits = Limits {
        max_connections: 2,
        ..patient()
    };
    let running = serve_app(app, with(limits)).await;
    let (a, b) = (
        start_upload(running.addr).await,
        start_upload(running.addr).await,
    );

    // Two connections hold both slots with requests in flight (half-sent chunks)...
    let mut busy = Vec::new();
    for loc in [&a, &b] {
        let mut s = TcpStream::connect(running.addr).await.unwrap();
        let req =
            format!("PATCH {loc} HTTP/1.1\r\nHost: test\r\nContent-Length: 20\r\n\r\nfirst ten.");
        s.write_all(req.as_bytes()).await.unwrap();
        busy.push(s);
    }
    wait_uploads(&registry, 2).await;

    // ...so a third waits unanswered: a request in flight is never cut to make room...
    let mut third = TcpStream::connect(running.addr).await.unwrap();
    third.write_all(GET_BASE).await.unwrap();
    assert_eq!(
        read_head(&mut third, Duration::from_millis(700)).await,
        None,
        "served a connection over the cap"
    );
    // ...until one of the two is done and closes; then it is served.
    let mut done = busy.remove(0);
    done.write_all(b"second ten").await.unwrap();
    let head = read_head(&mut done, Duration::from_secs(5)).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    drop(done);
    let head = read_head(&mut third, Duration::from_secs(5))
        .await
        .expect("the waiting connection was not served once a slot freed");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop((busy, third));
    running.stop().await;
}

/// Opens `n` connections that hold a slot without ever completing a request: even ones send nothing,
/// odd ones a request head a byte every 100 ms (slowloris), until the returned task is aborted.
async fn attack(addr: SocketAddr, n: usize) -> JoinHandle<()> {
    let mut idle = Vec::new();
    let mut slow = Vec::new();
    for i in 0..n {
        let s = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            idle.push(s)
        } else {
            slow.push(s)
        }
    }
    tokio::spawn(async move {
        let _idle = idle;
        for s in &mut slow {
            let _ = s
                .write_all(b"GET /v2/ HTTP/1.1\r\nHost: test\r\nX-Slow: ")
                .await;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            for s in &mut slow {
                let _ = s.write_all(b"a").await;
            }
        }
    })
}

#[tokio::test]
async fn idle_and_slowloris_connections_do_not_keep_other_clients_waiting() {
    let h = Harness::new();
    // The cap is small and the header timeout long: before the fix, a client past the cap waited for
    // an attacker's connection to time out.
    let limits = Limits {
        max_connections: 32,
        ..patient()
    };
    let running = serve_app(h.app.clone(), with(limits)).await;
    let mut keep_alive = TcpStream::connect(running.addr).await.unwrap();
    keep_alive.write_all(GET_BASE).await.unwrap();
    assert!(
        read_head(&mut keep_alive, Duration::from_secs(5))
            .await
            .is_some()
    );

    // More attack connections than the cap: half silent, half dribbling their heads.
    let attacker = attack(running.addr, 48).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Legitimate clients, one after another, are each answered quickly.
    for i in 0..5 {
        let started = Instant::now();
        let mut s = TcpStream::connect(running.addr).await.unwrap();
        s.write_all(GET_BASE).await.unwrap();
        let head = read_head(&mut s, Duration::from_secs(2))
            .await
            .unwrap_or_else(|| {
                panic!("client {i} waited 2 s behind idle and slowloris connections")
            });
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "client {i} answered after {took:?}"
        );
    }
    // The oldest quiet connection went first: the idle keep-alive one, closed.
    let (_, _) = until_closed(&mut keep_alive, Duration::from_secs(2)).await;
    attacker.abort();
    running.stop().await;
}

#[tokio::test]
async fn a_stalled_upload_body_fails_and_leaves_the_upload_resumable() {
    let h = Harness::new();
    let limits = Limits {
        stall_timeout: Duration::from_secs(1),
        ..patient()
    };
    let running = serve_app(h.app.clone(), with(limits)).await;
    let start = h
        .call(axum::http::Method::POST, "/v2/a/blobs/uploads/", &[], None)
        .await;
    let loc = start.header("location").to_string();

    let mut s = TcpStream::connect(running.addr).await.unwrap();
    let req =
        format!("PATCH {loc} HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nten bytes!");
    s.write_all(req.as_bytes()).await.unwrap();
    let sent = Instant::now();
    // The client now sends nothing more, and keeps the connection open.
    let head = read_head(&mut s, Duration::from_secs(10))
        .await
        .expect("no answer to a stalled body");
    let waited = sent.elapsed();
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(head.contains("BLOB_UPLOAD_INVALID"), "{head}");
    assert!(
        waited >= Duration::from_millis(900),
        "gave up after {waited:?}"
    );
    // Nothing of the stalled chunk was recorded: the upload resumes from 0.
    assert_eq!(h.get(&loc).await.header("range"), "0-0");
    running.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_its_connection() {
    let h = Harness::new();
    // A blob far larger than the socket buffers on both sides.
    let blob = vec![7u8; 32 * 1024 * 1024];
    let d = h.push_blob("a", &blob).await;
    let limits = Limits {
        stall_timeout: Duration::from_secs(1),
        max_connections: 1,
        ..patient()
    };
    let running = serve_app(h.app.clone(), with(limits)).await;

    // The reader asks for the blob and reads only the head: it holds the only slot...
    let mut reader = TcpStream::connect(running.addr).await.unwrap();
    let req = format!("GET /v2/a/blobs/{d} HTTP/1.1\r\nHost: test\r\n\r\n");
    reader.write_all(req.as_bytes()).await.unwrap();
    assert!(
        read_head(&mut reader, Duration::from_secs(5))
            .await
            .is_some()
    );
    let stalled = Instant::now();

    // ...until the server gives up on it, and the next client is served.
    let mut next = TcpStream::connect(running.addr).await.unwrap();
    next.write_all(GET_BASE).await.unwrap();
    let head = read_head(&mut next, Duration::from_secs(15))
        .await
        .expect("a stalled reader kept the only slot");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(stalled.elapsed() >= Duration::from_millis(900));
    drop(reader);
    running.stop().await;
}

/// A registry whose uploads-in-progress count the test can read, behind the router.
fn registry_with_upload_cap(max: usize) -> (tempfile::TempDir, Registry, Router) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = blobs::fs::FsBlobStore::open(dir.path().join("blobs")).unwrap();
    let meta = metadata::sqlite::SqliteStore::open(&dir.path().join("metadata.sqlite")).unwrap();
    let registry = Registry::new(
        Arc::new(blobs),
        Arc::new(meta),
        registry::Settings {
            max_concurrent_uploads: Some(max),
            ..registry::Settings::default()
        },
    );
    let app = berth_http::router(registry.clone());
    (dir, registry, app)
}

async fn wait_uploads(registry: &Registry, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while registry.uploads_in_progress() != n {
        assert!(
            Instant::now() < deadline,
            "uploads in progress never reached {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts an upload through the server; returns its location.
pub async fn start_upload(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (raw, _) = until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(raw.starts_with("HTTP/1.1 202"), "{raw}");
    raw.lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test]
async fn uploads_over_the_cap_answer_429_with_retry_after() {
    let (_dir, registry, app) = registry_with_upload_cap(1);
    let running = serve_app(app, with(patient())).await;
    let (a, b) = (
        start_upload(running.addr).await,
        start_upload(running.addr).await,
    );

    // Upload A sends part of its chunk and holds the only slot.
    let mut holder = TcpStream::connect(running.addr).await.unwrap();
    let req = format!("PATCH {a} HTTP/1.1\r\nHost: test\r\nContent-Length: 20\r\n\r\nfirst ten.");
    holder.write_all(req.as_bytes()).await.unwrap();
    wait_uploads(&registry, 1).await;

    // Upload B is refused at once, with the spec's code and a hint when to retry.
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    let req = format!(
        "PATCH {b} HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbbbb"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let (raw, _) = until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(raw.starts_with("HTTP/1.1 429"), "{raw}");
    assert!(raw.contains("TOOMANYREQUESTS"), "{raw}");
    let retry_after = raw
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .expect("no Retry-After");
    assert!(retry_after.trim().parse::<u64>().unwrap() > 0, "{raw}");

    // A finishes; B's retry goes through.
    holder.write_all(b"second ten").await.unwrap();
    let head = read_head(&mut holder, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    wait_uploads(&registry, 0).await;
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let (raw, _) = until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(raw.starts_with("HTTP/1.1 202"), "{raw}");
    assert!(raw.contains("range: 0-3"), "{raw}");
    running.stop().await;
}

#[tokio::test]
async fn an_upload_dripping_below_the_minimum_rate_is_cut_and_frees_its_slot() {
    let (_dir, registry, app) = registry_with_upload_cap(1);
    // 100 bytes a second over 1 s windows; the stall timeout (60 s) never acts.
    let limits = Limits {
        min_body_rate: 100,
        body_rate_window: Duration::from_secs(1),
        ..patient()
    };
    let running = serve_app(app, with(limits)).await;
    let (a, b) = (
        start_upload(running.addr).await,
        start_upload(running.addr).await,
    );

    // A drips a byte every 200 ms into the only upload slot: never silent, 5 bytes a second.
    let mut drip = TcpStream::connect(running.addr).await.unwrap();
    let req = format!("PATCH {a} HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n");
    drip.write_all(req.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut rd, mut wr) = drip.split();
    let dripping = async {
        loop {
            if wr.write_all(b"x").await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let answered = async {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&raw).into_owned()
    };
    let wait = async {
        wait_uploads(&registry, 1).await;
        // Meanwhile B is refused: A holds the slot.
        let mut s = TcpStream::connect(running.addr).await.unwrap();
        let req = format!(
            "PATCH {b} HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbbbb"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let (raw, _) = until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(raw.starts_with("HTTP/1.1 429"), "{raw}");
        answered.await
    };
    let head = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::select! {
            head = wait => head,
            _ = dripping => unreachable!(),
        }
    })
    .await
    .expect("a body dripping at 5 bytes a second held its upload slot for 5 s");
    let took = started.elapsed();
    // Cut after its first window, with the spec's error; nothing of it recorded.
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(head.contains("BLOB_UPLOAD_INVALID"), "{head}");
    assert!(head.contains("minbodyrate"), "{head}");
    assert!(took >= Duration::from_millis(900), "cut after {took:?}");
    drop(drip);
    wait_uploads(&registry, 0).await;
    assert_eq!(h_range(running.addr, &a).await, "0-0");

    // The slot is free: B goes through.
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    let req = format!(
        "PATCH {b} HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbbbb"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let (raw, _) = until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(raw.starts_with("HTTP/1.1 202"), "{raw}");
    running.stop().await;
}

/// The `Range` an upload's status reports.
async fn h_range(addr: SocketAddr, loc: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {loc} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let (raw, _) = until_closed(&mut s, Duration::from_secs(5)).await;
    raw.lines()
        .find_map(|l| l.strip_prefix("range: "))
        .unwrap_or_else(|| panic!("no range in {raw}"))
        .trim()
        .to_string()
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_then_stops() {
    let (_dir, registry, app) = registry_with_upload_cap(10);
    let limits = Limits {
        drain_timeout: Duration::from_secs(10),
        ..patient()
    };
    let running = serve_app(app, with(limits)).await;
    let loc = start_upload(running.addr).await;
    let idle = TcpStream::connect(running.addr).await.unwrap();
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    let req = format!("PATCH {loc} HTTP/1.1\r\nHost: test\r\nContent-Length: 20\r\n\r\nfirst ten.");
    s.write_all(req.as_bytes()).await.unwrap();
    wait_uploads(&registry, 1).await;

    let addr = running.addr;
    let stopping = tokio::spawn(running.stop());
    // New connections are refused once shutdown began.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The request in flight completes and is answered; then the server is gone.
    s.write_all(b"second ten").await.unwrap();
    let (raw, _) = until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(raw.starts_with("HTTP/1.1 202"), "{raw}");
    assert!(raw.contains("range: 0-19"), "{raw}");
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("serve did not return once its requests were done")
        .unwrap();
    drop(idle);
}

#[tokio::test]
async fn shutdown_cuts_off_what_outlasts_the_drain_timeout() {
    let (_dir, registry, app) = registry_with_upload_cap(10);
    let limits = Limits {
        drain_timeout: Duration::from_secs(1),
        ..patient()
    };
    let running = serve_app(app, with(limits)).await;
    let loc = start_upload(running.addr).await;
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    let req = format!("PATCH {loc} HTTP/1.1\r\nHost: test\r\nContent-Length: 20\r\n\r\nfirst ten.");
    s.write_all(req.as_bytes()).await.unwrap();
    wait_uploads(&registry, 1).await;

    // The client never sends the rest: serve returns after the drain timeout regardless.
    let began = Instant::now();
    running.stop().await;
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let _ = until_closed(&mut s, Duration::from_secs(5)).await;
    // The cut-off chunk was not recorded (the session still says 0 bytes), so the upload can resume.
    wait_uploads(&registry, 0).await;
    let id = loc.rsplit('/').next().unwrap();
    let status = registry
        .upload_status(
            &"a".parse().unwrap(),
            &registry::UploadId::parse(id).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(status.offset, 0);
}
