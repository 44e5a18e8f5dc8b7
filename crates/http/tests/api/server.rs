//! The real server on 127.0.0.1:0, spoken to over raw TCP: what only hyper does between the client and
//! the router (HEAD framing, a body cut off on the wire) and the graceful shutdown of `serve`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::harness::Harness;

const LIMIT: Duration = Duration::from_secs(10);

/// A running server over `h`'s registry, and the means to stop it.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn run(h: &Harness) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(berth_http::serve(listener, h.app.clone(), async move {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

/// Writes `request` raw and reads the whole answer (the request asks the server to close). With
/// `hang_up`, the client also closes its side once written, as a client that gives up mid-body does;
/// otherwise it must not, because hyper treats a half-closed connection as gone and may drop the request.
async fn exchange(addr: SocketAddr, request: &[u8], hang_up: bool) -> String {
    let io = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        if hang_up {
            s.shutdown().await.unwrap();
        }
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(LIMIT, io).await.unwrap()
}

/// The value of header `name` in a raw response head.
fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    let head = raw.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn serves_over_tcp_and_stops_gracefully() {
    let h = Harness::new();
    let server = run(&h).await;
    let raw = exchange(
        server.addr,
        b"GET /v2/ HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        false,
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert_eq!(
        header(&raw, "docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert!(header(&raw, "x-request-id").is_some());

    server.stop.send(()).unwrap();
    let result = tokio::time::timeout(LIMIT, server.task).await.unwrap();
    assert!(matches!(result, Ok(Ok(()))));
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn head_keeps_its_content_length_on_the_wire() {
    let h = Harness::new();
    let data = b"twenty bytes of data";
    let d = h.push_blob("a", data).await;
    let m = h.image("a", "v1").await;
    h.put_manifest("a", "v1", &m).await.assert_status(201);
    let server = run(&h).await;

    for (path, len) in [
        (format!("/v2/a/blobs/{d}"), data.len()),
        ("/v2/a/manifests/v1".to_string(), m.len()),
    ] {
        let req = format!("HEAD {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        let raw = exchange(server.addr, req.as_bytes(), false).await;
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        assert_eq!(
            header(&raw, "content-length"),
            Some(len.to_string().as_str()),
            "{raw}"
        );
        let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        assert!(body.is_empty(), "HEAD sent a body: {body:?}");
    }
}

#[tokio::test]
async fn a_body_cut_off_on_the_wire_is_a_client_error() {
    let h = Harness::new();
    let start = h
        .call(Method::POST, "/v2/a/blobs/uploads/", &[], None)
        .await;
    let loc = start.header("location").to_string();
    let server = run(&h).await;

    let req = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly ten b"
    );
    let raw = exchange(server.addr, req.as_bytes(), true).await;
    // hyper reports the early end of the body to the handler as a failed read, and the answer goes out
    // before the connection closes.
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.contains("BLOB_UPLOAD_INVALID"), "{raw}");
    // Nothing of the partial body was recorded.
    assert_eq!(h.get(&loc).await.header("range"), "0-0");
}

/// What hyper refuses before the router sees it is still answered with the spec's error body, a
/// request id and the API-version header (hyper's own answer is a bare 400).
#[tokio::test]
async fn requests_hyper_cannot_parse_get_the_spec_error_body() {
    let h = Harness::new();
    let server = run(&h).await;
    for request in [
        &b"GET /v2/\xff HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab",
        b"POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    ] {
        let raw = exchange(server.addr, request, false).await;
        assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
        assert_eq!(header(&raw, "docker-distribution-api-version"), Some("registry/2.0"), "{raw}");
        assert!(header(&raw, "x-request-id").is_some_and(|id| id.len() == 32), "{raw}");
        let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {raw}"));
        assert_eq!(json["errors"][0]["code"], "UNSUPPORTED", "{raw}");
    }
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}
