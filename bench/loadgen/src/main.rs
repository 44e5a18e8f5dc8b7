//! `bench-loadgen`: a closed-loop HTTP/1.1 load generator for the berth benchmark.
//!
//! Why it exists: wrk 4.1 (Debian's) keeps waiting for the body of a response to a HEAD request that
//! carries a `Content-Length`, as every registry's manifest and blob HEAD does, so it cannot measure
//! HEAD at all. This tool does what wrk does for the benchmark's rate workloads (N keep-alive
//! connections, each sending the next request as soon as the previous answer is complete, for a fixed
//! time) and knows that a HEAD answer has no body. It prints one JSON line with the same fields as the
//! benchmark's wrk script, so both feed the same report.
//!
//! Usage: `bench-loadgen [-m METHOD] [-H 'Name: value']... [-c CONNECTIONS] [-t THREADS] [-d SECONDS] URL`
//!
//! `bench-loadgen push ...` is another tool in the same binary: one large generated blob pushed in
//! constant memory (see [`push`]).

mod push;
mod response;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use response::{Head, parse_head};

/// What one run is asked to do.
struct Args {
    method: String,
    headers: Vec<String>,
    connections: usize,
    threads: usize,
    duration: Duration,
    /// `host:port` to connect to.
    authority: String,
    /// Path and query of every request.
    target: String,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        method: "GET".into(),
        headers: Vec::new(),
        connections: 64,
        threads: 2,
        duration: Duration::from_secs(5),
        authority: String::new(),
        target: String::new(),
    };
    let mut url = None;
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "-m" => args.method = value("-m")?,
            "-H" => args.headers.push(value("-H")?),
            "-c" => args.connections = number(&value("-c")?)?,
            "-t" => args.threads = number(&value("-t")?)?,
            "-d" => args.duration = Duration::from_secs_f64(seconds(&value("-d")?)?),
            _ if a.starts_with('-') => return Err(format!("unknown option {a}")),
            _ => url = Some(a),
        }
    }
    let url = url.ok_or("no URL given")?;
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    args.authority = authority.to_string();
    args.target = target.to_string();
    if args.connections == 0 || args.threads == 0 {
        return Err("-c and -t must be at least 1".into());
    }
    Ok(args)
}

fn number(s: &str) -> Result<usize, String> {
    s.parse().map_err(|_| format!("not a number: {s}"))
}

fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("not a duration: {s}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("not a duration: {s}"))
    }
}

/// Counts and latencies of one connection's loop (merged at the end).
#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    connect: u64,
    read: u64,
    write: u64,
    status: u64,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latencies_us.extend(other.latencies_us);
        self.connect += other.connect;
        self.read += other.read;
        self.write += other.write;
        self.status += other.status;
    }
}

/// Why a request failed, so it is counted under the right heading.
enum Failure {
    Write,
    Read,
}

/// One connection: send, read the whole answer, repeat until the deadline.
async fn connection(args: Arc<Args>, request: Arc<Vec<u8>>, deadline: Instant) -> Stats {
    let mut stats = Stats::default();
    let head_only = args.method.eq_ignore_ascii_case("HEAD");
    let mut buf = Vec::with_capacity(64 * 1024);
    while Instant::now() < deadline {
        let mut stream = match TcpStream::connect(&args.authority).await {
            Ok(s) => s,
            Err(_) => {
                stats.connect += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Small requests and answers: Nagle's delay would be the latency measured.
        let _ = stream.set_nodelay(true);
        buf.clear();
        while Instant::now() < deadline {
            let started = Instant::now();
            match exchange(&mut stream, &request, &mut buf, head_only).await {
                Ok((status, keep_alive)) => {
                    let us = started.elapsed().as_micros();
                    stats
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                    if !(200..400).contains(&status) {
                        stats.status += 1;
                    }
                    if !keep_alive {
                        break;
                    }
                }
                Err(Failure::Write) => {
                    stats.write += 1;
                    break;
                }
                Err(Failure::Read) => {
                    stats.read += 1;
                    break;
                }
            }
        }
    }
    stats
}

/// Sends one request and reads its answer; returns (status, whether the connection stays open).
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
    head_only: bool,
) -> Result<(u16, bool), Failure> {
    stream
        .write_all(request)
        .await
        .map_err(|_| Failure::Write)?;
    let mut chunk = [0u8; 16 * 1024];
    let head: Head = loop {
        if let Some(h) = parse_head(buf).map_err(|_| Failure::Read)? {
            break h;
        }
        let n = stream.read(&mut chunk).await.map_err(|_| Failure::Read)?;
        if n == 0 {
            return Err(Failure::Read);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let body = if head_only || head.status == 204 || head.status == 304 || head.status < 200 {
        0
    } else {
        // A chunked or unframed answer is not something the rate workloads ask for.
        head.content_length.ok_or(Failure::Read)?
    };
    let total = head.length + body;
    while buf.len() < total {
        let n = stream.read(&mut chunk).await.map_err(|_| Failure::Read)?;
        if n == 0 {
            return Err(Failure::Read);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if buf.len() > total {
        // Nothing is pipelined, so bytes past this answer mean the server framed it wrongly.
        return Err(Failure::Read);
    }
    buf.drain(..total);
    Ok((head.status, head.keep_alive))
}

/// One thread's event loop with `connections` connections; returns their merged counts.
fn worker(
    args: Arc<Args>,
    request: Arc<Vec<u8>>,
    deadline: Instant,
    connections: usize,
) -> std::io::Result<Stats> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(connection(args.clone(), request.clone(), deadline)))
            .collect();
        let mut all = Stats::default();
        for t in tasks {
            if let Ok(s) = t.await {
                all.merge(s);
            }
        }
        all
    }))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank, as wrk's histogram reports.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("push") {
        return match push::run(std::env::args().skip(2)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench-loadgen push: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let mut request = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        args.method, args.target, args.authority
    );
    for h in &args.headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let request = Arc::new(request.into_bytes());
    let args = Arc::new(args);
    let started = Instant::now();
    let deadline = started + args.duration;
    // One single-threaded runtime per thread, each driving its share of the connections, as wrk runs one
    // event loop per thread: a work-stealing runtime would hand wake-ups between threads and measure that.
    let workers: Vec<_> = (0..args.threads)
        .map(|i| {
            let share =
                args.connections / args.threads + usize::from(i < args.connections % args.threads);
            let (args, request) = (args.clone(), request.clone());
            std::thread::spawn(move || worker(args, request, deadline, share))
        })
        .collect();
    let mut stats = Stats::default();
    for w in workers {
        match w.join() {
            Ok(Ok(s)) => stats.merge(s),
            Ok(Err(e)) => {
                eprintln!("bench-loadgen: starting a runtime: {e}");
                return ExitCode::FAILURE;
            }
            Err(_) => {
                eprintln!("bench-loadgen: a worker thread panicked");
                return ExitCode::FAILURE;
            }
        }
    }
    let elapsed = started.elapsed();
    let mut lat = stats.latencies_us;
    lat.sort_unstable();
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().map(|&v| f64::from(v)).sum::<f64>() / lat.len() as f64
    };
    println!(
        "{{\"requests\":{},\"duration_us\":{},\"connect\":{},\"read\":{},\"write\":{},\"status\":{},\"timeout\":0,\
         \"p50_us\":{:.1},\"p99_us\":{:.1},\"mean_us\":{:.1},\"max_us\":{:.1}}}",
        lat.len(),
        elapsed.as_micros(),
        stats.connect,
        stats.read,
        stats.write,
        stats.status,
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        mean,
        lat.last().copied().map(f64::from).unwrap_or(0.0),
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_options_and_url() {
        let a = args(&[
            "-m",
            "HEAD",
            "-H",
            "Accept: x",
            "-c",
            "8",
            "-d",
            "2s",
            "http://127.0.0.1:5000/v2/a/manifests/b?x=1",
        ])
        .unwrap();
        assert_eq!(a.method, "HEAD");
        assert_eq!(a.headers, vec!["Accept: x"]);
        assert_eq!(a.connections, 8);
        assert_eq!(a.duration, Duration::from_secs(2));
        assert_eq!(a.authority, "127.0.0.1:5000");
        assert_eq!(a.target, "/v2/a/manifests/b?x=1");
        assert_eq!(args(&["http://h:1"]).unwrap().target, "/");
    }

    #[test]
    fn refuses_bad_arguments() {
        assert!(args(&[]).is_err());
        assert!(args(&["https://h/"]).is_err());
        assert!(args(&["-c", "0", "http://h/"]).is_err());
        assert!(args(&["-d", "-1", "http://h/"]).is_err());
        assert!(args(&["-x", "http://h/"]).is_err());
    }

    /// A server that answers each request on one connection with the next of `answers`.
    async fn serve(
        answers: Vec<&'static [u8]>,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut chunk = [0u8; 1024];
            for answer in answers {
                let mut got = Vec::new();
                while !got.ends_with(b"\r\n\r\n") {
                    let n = s.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&chunk[..n]);
                }
                s.write_all(answer).await.unwrap();
            }
        });
        (addr, task)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn head_answer_with_a_content_length_has_no_body() {
        // The case wrk 4.1 hangs on: the second exchange only completes if the first read no body.
        block_on(async {
            let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
            let (addr, server) = serve(vec![head, head]).await;
            let mut c = TcpStream::connect(addr).await.unwrap();
            let mut buf = Vec::new();
            for _ in 0..2 {
                let r = tokio::time::timeout(
                    Duration::from_secs(5),
                    exchange(
                        &mut c,
                        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
                        &mut buf,
                        true,
                    ),
                )
                .await
                .expect("HEAD answer read as if it had a body");
                assert!(matches!(r, Ok((200, true))));
            }
            server.await.unwrap();
        });
    }

    #[test]
    fn get_reads_exactly_the_body_and_refuses_extra_bytes() {
        block_on(async {
            let (addr, server) = serve(vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab",
            ])
            .await;
            let mut c = TcpStream::connect(addr).await.unwrap();
            let mut buf = Vec::new();
            let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
            assert!(matches!(
                exchange(&mut c, req, &mut buf, false).await,
                Ok((200, true))
            ));
            assert!(buf.is_empty());
            assert!(matches!(
                exchange(&mut c, req, &mut buf, false).await,
                Ok((404, false))
            ));
            assert!(matches!(
                exchange(&mut c, req, &mut buf, false).await,
                Err(Failure::Read)
            ));
            server.await.unwrap();
        });
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
