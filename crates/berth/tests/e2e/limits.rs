//! berth's `limits` section takes effect in the binary: an idle connection is closed after
//! `limits.idletimeout`, uploads over `limits.maxconcurrentuploads` answer 429 with `Retry-After`, and
//! connections that never complete a request do not keep other clients out at `limits.maxconnections`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::{Api, Options, Server, repo};

fn server_with(vars: &[(&str, &str)]) -> Server {
    Server::start_with(Options {
        env: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Options::default()
    })
}

#[test]
fn an_idle_connection_is_closed_after_the_configured_idle_timeout() {
    // The header-read timeout (which also ends an idle HTTP/1 connection) stays long: the idle one acts.
    let server = server_with(&[
        ("REGISTRY_LIMITS_IDLETIMEOUT", "1s"),
        ("REGISTRY_LIMITS_HEADERREADTIMEOUT", "1m"),
    ]);
    let mut tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", server.host());
    tcp.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = tcp.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    // Nothing more is asked: the server closes the connection (read returns 0, or a reset).
    loop {
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(10),
        "closed after {idle:?}"
    );
}

#[test]
fn idle_and_slowloris_connections_past_the_cap_do_not_keep_clients_waiting() {
    // The default cap (512) and header timeout (20 s): what an attacker meets.
    let server = Server::start();
    // 600 connections from one client, none completing a request: half silent, half sending a head a
    // byte at a time (slowloris).
    let mut idle = Vec::new();
    let mut slow = Vec::new();
    for i in 0..600 {
        let tcp = TcpStream::connect(server.addr()).unwrap();
        if i % 2 == 0 {
            idle.push(tcp);
        } else {
            slow.push(tcp);
        }
    }
    let head = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\nX-Slow: ", server.host());
    for tcp in &mut slow {
        let _ = tcp.write_all(head.as_bytes());
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dribbler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                for tcp in &mut slow {
                    let _ = tcp.write_all(b"a");
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    // Clients on connections of their own are answered at once, not after the 20 s header timeout.
    for i in 0..5 {
        let started = Instant::now();
        let resp = server.api().get("/v2/", &[]).unwrap();
        let took = started.elapsed();
        assert_eq!(resp.status, 200, "{}", resp.describe());
        assert!(took < Duration::from_secs(2), "request {i} took {took:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    dribbler.join().unwrap();
    drop(idle);
}

#[test]
fn a_body_below_the_configured_minimum_rate_is_cut() {
    let server = server_with(&[
        ("REGISTRY_LIMITS_MINBODYRATE", "100"),
        ("REGISTRY_LIMITS_BODYRATEWINDOW", "1s"),
    ]);
    let upload = server.api().start_upload(&repo("limits-rate")).unwrap();
    let mut tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let head = format!(
        "PATCH {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000\r\n\r\n",
        upload.location,
        server.host()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    // A byte every 200 ms (5 bytes a second) until the answer comes.
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a body at 5 bytes a second was not cut in 10 s"
        );
        let _ = tcp.write_all(b"x");
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    // The error body, if it came apart from the head.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !answer.ends_with(b"}") && Instant::now() < deadline {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("BLOB_UPLOAD_INVALID"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn uploads_over_the_configured_cap_answer_429() {
    // The metrics tell when the held upload has its slot (it reaches the registry a moment after its
    // head is written, and a request sent before that would be the one taking the slot).
    let (debug, mut vars) = metrics_on_debug_port();
    vars.push(("REGISTRY_LIMITS_MAXCONCURRENTUPLOADS".into(), "1".into()));
    let server = Server::start_with(Options {
        env: vars,
        ..Options::default()
    });
    let api = server.api();
    let repo = repo("limits-uploads");
    let (a, b) = (
        api.start_upload(&repo).unwrap(),
        api.start_upload(&repo).unwrap(),
    );

    // A's chunk is half sent and held: it takes the only slot.
    let mut held = TcpStream::connect(server.addr()).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let head = format!(
        "PATCH {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 20\r\nConnection: close\r\n\r\nfirst ten.",
        a.location,
        server.host()
    );
    held.write_all(head.as_bytes()).unwrap();
    wait_for_uploads_in_progress(&debug, 1);

    // B is refused at once, with the spec's code and a hint when to retry.
    let refused = api
        .request("PATCH", &b.location, &[], Some(b"bbbb"))
        .unwrap();
    assert_eq!(refused.status, 429, "{}", refused.describe());
    assert_eq!(refused.error_codes(), ["TOOMANYREQUESTS"]);
    assert!(refused.header("retry-after").is_some());

    // A completes; then B's retry goes through.
    held.write_all(b"second ten").unwrap();
    let mut answer = String::new();
    let _ = held.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let retried = api
        .request("PATCH", &b.location, &[], Some(b"bbbb"))
        .unwrap();
    assert_eq!(retried.status, 202, "{}", retried.describe());
}

/// The variables that serve metrics on a debug port of their own, and a client of that port.
pub fn metrics_on_debug_port() -> (Api, Vec<(String, String)>) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"));
    let addr = format!("127.0.0.1:{port}");
    let vars = vec![
        ("REGISTRY_HTTP_DEBUG_ADDR".into(), addr.clone()),
        (
            "REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED".into(),
            "true".into(),
        ),
    ];
    (Api::new(&format!("http://{addr}")), vars)
}

/// Waits (bounded) until the server reports `n` uploads streaming bytes in.
pub fn wait_for_uploads_in_progress(debug: &Api, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = debug.get("/metrics", &[]).ok().and_then(|r| {
            String::from_utf8_lossy(&r.body)
                .lines()
                .find_map(|l| l.strip_prefix("berth_uploads_in_progress "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        if now == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "uploads in progress stayed at {now:?}, expected {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
