//! berth's `limits` section takes effect in the binary: an idle connection is closed after
//! `limits.idletimeout`, and uploads over `limits.maxconcurrentuploads` answer 429 with `Retry-After`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{Options, Server, repo};

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
fn uploads_over_the_configured_cap_answer_429() {
    let server = server_with(&[("REGISTRY_LIMITS_MAXCONCURRENTUPLOADS", "1")]);
    let api = server.api();
    let repo = repo("limits-uploads");
    let (a, b) = (
        api.start_upload(&repo).unwrap(),
        api.start_upload(&repo).unwrap(),
    );

    // A's chunk is half sent and held: it takes the only slot.
    let mut held = TcpStream::connect(server.addr()).unwrap();
    let head = format!(
        "PATCH {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 20\r\n\r\nfirst ten.",
        a.location,
        server.host()
    );
    held.write_all(head.as_bytes()).unwrap();

    // B is refused while A holds it (polled: A's request reaches the registry a moment later).
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let r = api
            .request("PATCH", &b.location, &[], Some(b"bbbb"))
            .unwrap();
        if r.status == 429 {
            break r;
        }
        assert_eq!(r.status, 202, "{}", r.describe());
        assert!(Instant::now() < deadline, "never refused");
        // Accepted before A's request reached the registry: B's upload simply grew; ask again.
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused.error_codes(), ["TOOMANYREQUESTS"]);
    assert!(refused.header("retry-after").is_some());
    drop(held);
}
