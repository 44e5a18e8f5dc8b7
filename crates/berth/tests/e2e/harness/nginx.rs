//! nginx as the load balancer in front of several berth replicas: round robin over their addresses, on
//! `127.0.0.1` and a free port, with a configuration, pid file, logs and temporary directories of its
//! own, run in the foreground as a child of the test (killed when dropped).
//!
//! The proxy settings are the ones a registry needs behind nginx: no limit on body size
//! (`client_max_body_size 0`), bodies streamed both ways rather than spooled to disk
//! (`proxy_request_buffering off`, `proxy_buffering off`, HTTP/1.1 to the upstream for chunked
//! bodies), and a request that could not reach a replica (connection refused or reset before an answer:
//! a replica that died) passed to the next one, up to three tries. nginx never resends a request whose
//! body it has started streaming, so an upload cut by a dying replica fails to the client. nginx answers
//! that failure in a form the clients retry (see the comment in the configuration: 429 with the spec's
//! UNAVAILABLE body, as skopeo treats every 5xx as final), and the retry lands on a live replica.

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// What nginx answers when no replica did: the spec's error body with the code clients retry.
const UNAVAILABLE_BODY: &str = r#"{"errors":[{"code":"UNAVAILABLE","message":"service unavailable","detail":"no registry replica answered"}]}"#;

/// A running nginx, killed when dropped.
pub struct Balancer {
    dir: tempfile::TempDir,
    child: Child,
    addr: SocketAddr,
}

impl Balancer {
    /// nginx round-robin over `upstreams`, or `None` (after saying that `test` skipped) when nginx is not
    /// installed, except under CI, where that fails (`scripts/test` installs it).
    pub fn start(test: &str, upstreams: &[SocketAddr]) -> Option<Balancer> {
        let Some(nginx) = nginx() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "nginx is not installed under CI (scripts/test installs Debian's nginx)"
            );
            eprintln!("SKIPPED {test}: nginx is not installed (scripts/test installs it)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-nginx-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        // Another process may take the port between our probe and nginx's bind: try a few.
        for _ in 0..5 {
            let port = free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config(dir.path(), addr, upstreams))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
            let stderr = File::create(dir.path().join("stderr.log"))
                .unwrap_or_else(|e| panic!("cannot create nginx's stderr log: {e}"));
            let mut child = Command::new(&nginx)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                // The log of start-up errors, before the configuration's own is open.
                .args(["-e", "stderr"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(stderr))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", nginx.display()));
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if std::net::TcpStream::connect(addr).is_ok() {
                    return Some(Balancer { dir, child, addr });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // The port was taken; try another.
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "nginx did not listen on {addr} within {START_TIMEOUT:?}\n{}",
                        read(&dir.path().join("stderr.log"))
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "nginx did not start:\n{}",
            read(&dir.path().join("stderr.log"))
        );
    }

    /// `127.0.0.1:port`, as image references want it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// nginx's access log: one line per request,
    /// `<status> <upstream statuses> <upstream addresses tried> <method> <uri>`.
    pub fn access_log(&self) -> String {
        read(&self.dir.path().join("access.log"))
    }

    /// nginx's error log (the configuration's), for failure messages.
    pub fn error_log(&self) -> String {
        let mut text = read(&self.dir.path().join("stderr.log"));
        text.push_str(&read(&self.dir.path().join("error.log")));
        text
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- nginx error log ---\n{}", tail(&self.error_log()));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, addr: SocketAddr, upstreams: &[SocketAddr]) -> String {
    let d = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|u| format!("        server {u} max_fails=1 fail_timeout=10s;\n"))
        .collect();
    format!(
        "# Written by the berth end-to-end harness: one process in the foreground, every path in {d}.
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    log_format upstreams '$status $upstream_status $upstream_addr $request_method $request_uri';
    access_log {d}/access.log upstreams;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream berth {{
{servers}    }}
    server {{
        listen {addr};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_read_timeout 300s;
        proxy_send_timeout 300s;
        proxy_connect_timeout 5s;
        proxy_next_upstream error timeout http_502;
        proxy_next_upstream_tries 3;
        # nginx's own failures (no replica answered, or the one streaming this request died) are answered
        # 429 with the spec's error body (code UNAVAILABLE) and Retry-After. Not 502 or 503: skopeo 1.9.3
        # (Debian 12; containers/common's retry) treats every 5xx status as final, even 503 with that
        # body, and so a connection cut mid-body; it retries an error code in a 4xx body. Replicas' own answers pass unchanged
        # (proxy_intercept_errors is off, so error_page sees only nginx's own errors).
        error_page 502 504 = @unavailable;
        location / {{
            proxy_pass http://berth;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
        location @unavailable {{
            default_type application/json;
            add_header Retry-After 1 always;
            return 429 '{UNAVAILABLE_BODY}';
        }}
    }}
}}
"
    )
}

/// The nginx binary: on PATH, or where Debian puts it (`/usr/sbin`, not on a user's PATH).
fn nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

fn read(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(8 * 1024);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    &text[start..]
}

/// CPU time the process `pid` has used so far (user and system, from `/proc/<pid>/stat`), to see which
/// replica is receiving an upload right now: it is the one hashing and copying bytes, the others idle.
/// (Socket reads are not in `/proc/<pid>/io`, and over S3 nothing is written to local files.)
pub fn cpu_time_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: state is field 3,
    // utime and stime fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf(3) has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)?;
    Some(Duration::from_millis((utime + stime) * 1000 / ticks))
}
