//! `berth health`: one `GET` of a running berth's health endpoint, exit 0 on 200, for the image's
//! `HEALTHCHECK` and Kubernetes' exec probes, where there is no curl (the image holds berth and libc only).
//!
//! Plain HTTP/1.0 over a socket of std, nothing more: the probe must not need the async runtime or TLS.
//! Which address it probes comes from the same configuration `berth serve` reads (file and `REGISTRY_*`
//! variables), so the image's HEALTHCHECK follows `REGISTRY_HTTP_ADDR`; a registry that serves TLS is
//! probed on its debug address (`http.debug.addr`, `/debug/health`), which is plain HTTP.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config::Config;

/// The endpoint `berth health` probes unless told: `/healthz` on the configured address (on loopback when
/// it listens on every address), or with TLS configured `/debug/health` on the debug address.
pub fn url_for(config: &Config) -> Result<String, String> {
    let local = |addr: SocketAddr| {
        let ip = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::from(Ipv4Addr::LOCALHOST),
            ip if ip.is_unspecified() => IpAddr::from(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, addr.port())
    };
    match (&config.http.tls, config.http.debug.addr) {
        (None, _) => Ok(format!("http://{}/healthz", local(config.http.addr))),
        (Some(_), Some(debug)) => Ok(format!("http://{}/debug/health", local(debug))),
        (Some(_), None) => Err(
            "TLS is configured and no http.debug.addr: give the URL to probe, or a debug address"
                .into(),
        ),
    }
}

/// A probe that hangs is a failed probe.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `GET url`; `Ok` with the status line when the answer is 200, else why not.
pub fn probe(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url}: only http:// URLs are probed (use the debug address for a TLS registry)")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    let io = |e: std::io::Error| format!("{url}: {e}");
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    // One write of the whole request: `write!` straight to the socket would send each formatted piece
    // as its own segment.
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: berth-health\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    // The status line is all that is read (at most a few hundred bytes), however many reads it takes.
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 256 {
        let n = stream.read(&mut chunk).map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default().to_owned();
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(status_line),
        _ => Err(format!("{url}: {status_line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server answering `status_line`.
    fn answer_once(status_line: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                // The whole request is read before answering: closing on unread bytes resets the
                // connection, and the client may lose the answer.
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(s, "{status_line}\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        format!("http://{addr}/healthz")
    }

    #[test]
    fn only_a_200_is_healthy() {
        assert!(probe(&answer_once("HTTP/1.1 200 OK")).is_ok());
        assert!(probe(&answer_once("HTTP/1.1 503 Service Unavailable")).is_err());
        assert!(probe("https://127.0.0.1:5000/healthz").is_err());
        // Nothing listening.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(probe(&format!("http://127.0.0.1:{port}/healthz")).is_err());
    }
}
