//! SIGTERM during an upload: the binary stops accepting, lets the chunk in flight finish (or cuts it off
//! once `http.draintimeout` has passed), exits cleanly, and the upload resumes after a restart from the
//! last acknowledged byte.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::http::{content_range, range_last};
use crate::harness::rng::Rng;
use crate::harness::{Options, Server, repo, sha256};
use crate::limits::{metrics_on_debug_port, wait_for_uploads_in_progress};

const MIB: usize = 1024 * 1024;

/// Sends a PATCH head declaring `body_len` bytes at `offset`, and the first `sent` of them.
fn start_patch(
    server: &Server,
    location: &str,
    offset: u64,
    body: &[u8],
    sent: usize,
) -> TcpStream {
    let mut tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Range: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.host(),
        content_range(offset, body.len()),
        body.len()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(&body[..sent]).unwrap();
    tcp
}

/// Everything the server sent until it closed the connection (or reset it).
fn read_all(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Starts an upload and acknowledges a first chunk of `first` bytes; returns its location.
fn upload_with_first_chunk(server: &Server, repo: &str, data: &[u8], first: usize) -> String {
    let api = server.api();
    let mut up = api.start_upload(repo).unwrap();
    api.patch(&mut up, &data[..first]).unwrap();
    assert_eq!(up.offset, first as u64);
    up.location
}

/// After a restart: the upload holds `acknowledged` bytes; the rest goes in and the blob is whole.
fn resume_and_finish(
    server: &Server,
    repo: &str,
    location: &str,
    data: &[u8],
    acknowledged: usize,
) {
    let api = server.api();
    let status = api.get(location, &[]).unwrap();
    assert_eq!(status.status, 204, "{}", status.describe());
    assert_eq!(
        range_last(&status),
        Some(acknowledged as u64 - 1),
        "the upload does not hold exactly the acknowledged bytes"
    );
    let mut up = crate::harness::http::Upload {
        location: location.to_string(),
        offset: acknowledged as u64,
    };
    api.patch(&mut up, &data[acknowledged..]).unwrap();
    let digest = sha256(data);
    api.finish(&up, &digest, &[]).unwrap();
    let stored = api.get_ok(&format!("/v2/{repo}/blobs/{digest}"));
    assert_eq!(sha256(&stored), digest);
}

#[test]
fn sigterm_lets_the_chunk_in_flight_finish_and_the_upload_resumes_after_restart() {
    // The metrics on the debug port tell when the chunk is streaming into its upload.
    let (debug, vars) = metrics_on_debug_port();
    let mut server = Server::start_with(Options {
        env: vars,
        ..Options::default()
    });
    let repo = repo("sigterm-finish");
    let data = Rng::new(7).bytes(3 * MIB);
    let location = upload_with_first_chunk(&server, &repo, &data, MIB);

    // The second chunk is half sent when SIGTERM arrives.
    let chunk = &data[MIB..2 * MIB];
    let mut tcp = start_patch(&server, &location, MIB as u64, chunk, chunk.len() / 2);
    wait_for_uploads_in_progress(&debug, 1);
    let addr = server.addr();
    std::thread::scope(|s| {
        let stopping = s.spawn(|| server.stop());
        // Once the server stops accepting, it is shutting down; the chunk in flight then completes.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_ok() {
            assert!(Instant::now() < deadline, "still accepting after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        tcp.write_all(&chunk[chunk.len() / 2..]).unwrap();
        let answer = read_all(&mut tcp);
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        let status = stopping.join().unwrap();
        assert!(status.success(), "berth exited with {status}");
    });

    server.start_again();
    resume_and_finish(&server, &repo, &location, &data, 2 * MIB);
}

#[test]
fn sigterm_cuts_off_a_stalled_chunk_after_the_drain_timeout_and_the_upload_resumes() {
    let (debug, mut vars) = metrics_on_debug_port();
    vars.push(("REGISTRY_HTTP_DRAINTIMEOUT".into(), "1s".into()));
    let mut server = Server::start_with(Options {
        env: vars,
        ..Options::default()
    });
    let repo = repo("sigterm-stalled");
    let data = Rng::new(8).bytes(3 * MIB);
    let location = upload_with_first_chunk(&server, &repo, &data, MIB);

    // The second chunk stalls half-way and never completes.
    let chunk = &data[MIB..2 * MIB];
    let mut tcp = start_patch(&server, &location, MIB as u64, chunk, chunk.len() / 2);
    wait_for_uploads_in_progress(&debug, 1);
    let stopping = Instant::now();
    let status = server.stop();
    let took = stopping.elapsed();
    assert!(status.success(), "berth exited with {status}");
    assert!(
        took >= Duration::from_millis(900),
        "exited after {took:?}, before the drain timeout"
    );
    // Cut off without an answer.
    let answer = read_all(&mut tcp);
    assert!(!answer.contains("202"), "{answer}");

    // Nothing of the cut-off chunk counts: the upload resumes after the first one.
    server.start_again();
    resume_and_finish(&server, &repo, &location, &data, MIB);
}
