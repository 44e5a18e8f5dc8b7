//! The server under test: the real `berth` binary, started on `127.0.0.1:0` over a temporary data directory,
//! stopped (gracefully or with SIGKILL) and started again over the same directory. Its metadata is in
//! SQLite in that directory, or (with [`Metadata::Postgres`]) in a fresh PostgreSQL database kept across
//! restarts likewise. Its blobs are in the data directory, or (with [`Storage::S3`]) under a fresh prefix
//! of the test bucket `BERTH_TEST_S3_*` names. [`Server::start_replicas`] starts several processes over
//! one storage and one database, as replicas behind a load balancer.
//!
//! Why a process and not the router in-process: these tests check what a user of the binary sees (the
//! address line, the environment variables, durability across a crash), which only the binary can show.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http::Api;
use super::postgres::Database;
use super::s3::S3Bucket;

/// How long the binary may take to print its address line: generous, since CI may be building other crates.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGTERM may take before the harness falls back to SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The binary to run: `berth` as cargo built it for this test. `BERTH_E2E_BIN` may name another executable
/// that honours the same interface (the address line and the `REGISTRY_*` variables), for example to compare
/// with a reference registry behind a wrapper script.
fn binary() -> PathBuf {
    match std::env::var_os("BERTH_E2E_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_berth")),
    }
}

/// Settings of one server; the data directory is kept across restarts.
#[derive(Clone, Debug)]
pub struct Options {
    pub delete_enabled: bool,
    /// A configuration file given to `berth serve` (the variables the harness sets still win over it).
    pub config: Option<PathBuf>,
    pub metadata: Metadata,
    /// Where the blobs are.
    pub storage: Storage,
    /// For [`Storage::S3`]: this server and prefix instead of `BERTH_TEST_S3_*` with a fresh prefix.
    pub s3: Option<S3Bucket>,
    /// More `REGISTRY_*` (or `OTEL_*`) variables for the server (set after the harness's own, so they
    /// win).
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            delete_enabled: true,
            config: None,
            metadata: Metadata::Sqlite,
            storage: Storage::Filesystem,
            s3: None,
            env: Vec::new(),
        }
    }
}

/// Where the server keeps its blobs: the storage engines a test can be run over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// The data directory (`storage.filesystem`).
    Filesystem,
    /// A prefix of its own (`rootdirectory`) in the bucket of `BERTH_TEST_S3_*` (`storage.s3`).
    S3,
}

/// What the replicas of one deployment share: the data directory (blobs on the filesystem, SQLite), the
/// PostgreSQL database and the S3 prefix. Dropped with the last server that uses it.
struct Shared {
    /// Holds `data/` (and the first server's log).
    _dir: tempfile::TempDir,
    /// The directory of `_dir`: the servers' working directory over S3, where berth keeps its SQLite
    /// database when no filesystem root is configured (`storage`'s default root is relative).
    workdir: PathBuf,
    database: Option<Database>,
    s3: Option<S3Bucket>,
    /// The `storage.s3` configuration file, for [`Storage::S3`].
    s3_config: Option<PathBuf>,
}

/// Where the server keeps its metadata: the engines a test can be run over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metadata {
    /// `metadata.sqlite` in the data directory (berth's default).
    Sqlite,
    /// A database of its own on the server of `BERTH_TEST_POSTGRES_URL` (the `database` section).
    Postgres,
}

/// A running `berth serve`, killed when dropped.
pub struct Server {
    /// The storage and database (kept alive while any replica runs); dropped after the process is.
    shared: Arc<Shared>,
    /// A replica's own directory, for its log (the first server's log is in the shared one).
    _log_dir: Option<tempfile::TempDir>,
    root: PathBuf,
    log: PathBuf,
    options: Options,
    running: Option<Running>,
    /// Every line the binary printed on stdout, over all its runs.
    stdout: Arc<Mutex<Vec<String>>>,
}

/// One run of the process.
struct Running {
    child: Child,
    addr: SocketAddr,
    line: String,
    /// The address line said `https://` (TLS configured).
    https: bool,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts berth with delete enabled over a fresh data directory.
    pub fn start() -> Server {
        Server::start_with(Options::default())
    }

    /// Starts berth with `options`; panics if they need an engine that is not available.
    pub fn start_with(options: Options) -> Server {
        let (metadata, storage) = (options.metadata, options.storage);
        Server::try_start_with(options)
            .unwrap_or_else(|| panic!("no {metadata:?} or {storage:?} server to run berth over"))
    }

    /// Starts `n` berth processes with `options` over one storage and one database (replicas), or `None`
    /// when an engine is missing, as [`try_start_with`](Self::try_start_with). Each has its own port and
    /// log; they share the data directory, the PostgreSQL database and the S3 prefix.
    pub fn start_replicas(options: Options, n: usize) -> Option<Vec<Server>> {
        let first = Server::try_start_with(options)?;
        let mut servers = Vec::with_capacity(n);
        for _ in 1..n {
            let log_dir = tempfile::Builder::new()
                .prefix("berth-e2e-replica-")
                .tempdir()
                .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
            let mut replica = Server {
                shared: Arc::clone(&first.shared),
                log: log_dir.path().join("server.log"),
                _log_dir: Some(log_dir),
                root: first.root.clone(),
                options: first.options.clone(),
                running: None,
                stdout: Arc::new(Mutex::new(Vec::new())),
            };
            replica.spawn();
            servers.push(replica);
        }
        servers.insert(0, first);
        Some(servers)
    }

    /// Starts berth with `options`, or returns `None` (having said that the test skipped) when they ask
    /// for PostgreSQL or S3 and no server is configured.
    pub fn try_start_with(options: Options) -> Option<Server> {
        let test = std::thread::current().name().unwrap_or("test").to_string();
        let s3 = match options.storage {
            Storage::Filesystem => None,
            Storage::S3 => Some(match &options.s3 {
                Some(bucket) => bucket.clone(),
                None => S3Bucket::from_env(&test)?,
            }),
        };
        let database = match options.metadata {
            Metadata::Sqlite => None,
            Metadata::Postgres => Some(Database::create(&test)?),
        };
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let root = dir.path().join("data");
        std::fs::create_dir(&root)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
        // Canonical, so that it compares equal to what the binary prints whatever symlinks lead to /tmp.
        let root = std::fs::canonicalize(&root)
            .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", root.display()));
        let log = dir.path().join("server.log");
        let s3_config = s3.as_ref().map(|bucket| {
            assert!(
                options.config.is_none(),
                "the harness cannot combine a test's configuration file with S3 storage"
            );
            let path = dir.path().join("s3.yml");
            std::fs::write(&path, bucket.config_yaml())
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            path
        });
        let mut server = Server {
            shared: Arc::new(Shared {
                workdir: dir.path().to_path_buf(),
                _dir: dir,
                database,
                s3,
                s3_config,
            }),
            _log_dir: None,
            root,
            log,
            options,
            running: None,
            stdout: Arc::new(Mutex::new(Vec::new())),
        };
        server.spawn();
        Some(server)
    }

    /// The data directory (absolute), the same across restarts.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The PostgreSQL database of a server over [`Metadata::Postgres`], to look at what berth recorded.
    pub fn database(&self) -> Option<&Database> {
        self.shared.database.as_ref()
    }

    /// The server's log file (stderr of every run).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The process id of the current run.
    pub fn pid(&self) -> u32 {
        self.running().child.id()
    }

    /// `127.0.0.1:port`, as image references want it.
    pub fn host(&self) -> String {
        self.running().addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.running().addr
    }

    /// `http://127.0.0.1:port`.
    /// `http://127.0.0.1:port`, or `https://` for a server with TLS.
    pub fn base_url(&self) -> String {
        let run = self.running();
        let scheme = if run.https { "https" } else { "http" };
        format!("{scheme}://{}", run.addr)
    }

    /// The line the current run printed at start.
    pub fn address_line(&self) -> &str {
        &self.running().line
    }

    /// A fresh HTTP client for the current run.
    pub fn api(&self) -> Api {
        Api::new(&self.base_url())
    }

    /// Every stdout line of every run so far (complete only once the process has exited).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Graceful stop (SIGTERM, then SIGKILL after a timeout); returns how the process ended.
    pub fn stop(&mut self) -> ExitStatus {
        let mut run = self.running.take().expect("server is not running");
        signal(&run.child, libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match run.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = run.child.kill();
                    let status = run.child.wait();
                    panic!(
                        "berth did not stop within {STOP_TIMEOUT:?} of SIGTERM ({status:?})\n{}",
                        self.log_tail()
                    );
                }
            }
        };
        join_reader(&mut run);
        self.note(&format!("stopped with SIGTERM: {status}"));
        status
    }

    /// SIGKILL: the process gets no chance to flush or clean anything, as in a crash.
    pub fn kill9(&mut self) {
        let mut run = self.running.take().expect("server is not running");
        let _ = run.child.kill();
        let _ = run.child.wait();
        join_reader(&mut run);
        self.note("killed with SIGKILL");
    }

    /// Starts the binary again over the same data directory (on a new port).
    pub fn start_again(&mut self) {
        assert!(self.running.is_none(), "server is still running");
        self.spawn();
    }

    /// Graceful stop, then start over the same data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// The last lines the server logged (stderr), for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(8 * 1024)));
            let _ = f.read_to_string(&mut text);
        }
        format!(
            "--- last lines of the server log ({}) ---\n{text}",
            self.log.display()
        )
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("server is not running")
    }

    /// Writes a marker into the server log, so a log that spans several runs reads in order.
    fn note(&self, what: &str) {
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&self.log) {
            let _ = writeln!(f, "=== harness: {what} ===");
        }
    }

    /// `berth` with `args` (a command and its flags), configured as this server is (its storage, its
    /// database, its variables, its configuration file), to run the maintenance commands beside it.
    pub fn berth(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        // Nothing from the caller's environment may configure the server under test.
        for (key, _) in std::env::vars_os() {
            if let Some(k) = key.to_str()
                && (k.starts_with("REGISTRY_") || k.starts_with("BERTH_") || k.starts_with("OTEL_"))
            {
                cmd.env_remove(&key);
            }
        }
        cmd.args(args);
        if let Some(config) = self
            .shared
            .s3_config
            .as_ref()
            .or(self.options.config.as_ref())
        {
            cmd.arg(config);
        }
        if self.shared.s3.is_none() {
            cmd.env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", &self.root);
        } else {
            cmd.current_dir(&self.shared.workdir);
        }
        cmd.env(
            "REGISTRY_STORAGE_DELETE_ENABLED",
            if self.options.delete_enabled {
                "true"
            } else {
                "false"
            },
        );
        if let Some(db) = &self.shared.database {
            cmd.envs(db.env());
        }
        cmd.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs [`berth`](Self::berth) with `args` to its end; its stdout, after checking it succeeded.
    pub fn berth_ok(&self, args: &[&str]) -> String {
        let out = self
            .berth(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run berth {args:?}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "berth {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn spawn(&mut self) {
        self.note("starting berth");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let mut cmd = self.berth(&["serve"]);
        cmd.env("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        let Some(stdout) = child.stdout.take() else {
            panic!("no stdout pipe")
        };
        let (first_tx, first_rx) = mpsc::channel();
        let lines = Arc::clone(&self.stdout);
        // The reader keeps draining stdout after the first line so the child can never block on a full pipe.
        let reader = std::thread::spawn(move || {
            let mut first = Some(first_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut l) = lines.lock() {
                    l.push(line.clone());
                }
                if let Some(tx) = first.take() {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match first_rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "berth printed no address line within {START_TIMEOUT:?} (exit: {status:?})\n{}",
                    self.log_tail()
                );
            }
        };
        let (addr, data) = parse_address_line(&line).unwrap_or_else(|| {
            let _ = child.kill();
            panic!(
                "unexpected first line on stdout: {line:?}\n{}",
                self.log_tail()
            )
        });
        assert!(
            addr.ip().is_loopback(),
            "berth listens on {addr}, asked for 127.0.0.1:0"
        );
        // Over S3 the line names the bucket's prefix, in a form the S3 wiring decides.
        if self.shared.s3.is_none() {
            assert_eq!(
                std::fs::canonicalize(&data).unwrap_or(data),
                self.root,
                "the address line names another data directory than REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"
            );
        }
        let https = line.starts_with("berth listening on https://");
        self.running = Some(Running {
            child,
            addr,
            line,
            https,
            reader: Some(reader),
        });
        self.wait_ready();
        self.check_metadata_engine();
        self.check_storage_engine();
    }

    /// A server meant to store blobs on S3 really does: no filesystem blob store appeared in its working
    /// directory (a berth that ignored `storage.s3` would pass every test on its default local root).
    fn check_storage_engine(&self) {
        if self.shared.s3.is_none() {
            return;
        }
        let local = find_dir(&self.shared.workdir, "uploads", 3);
        assert!(
            local.is_none(),
            "berth was given S3 storage but made a filesystem blob store at {local:?}\n{}",
            self.log_tail()
        );
    }

    /// A server meant to run over PostgreSQL really does: its schema is in the database, and no SQLite
    /// file appeared (a berth that ignored the `database` section would pass every test over SQLite).
    fn check_metadata_engine(&self) {
        let Some(db) = &self.shared.database else {
            return;
        };
        let tables = db.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
        );
        assert_ne!(
            tables.trim(),
            "0",
            "berth was given PostgreSQL database {} but created no table there\n{}",
            db.name,
            self.log_tail()
        );
        assert!(
            !self.root.join("metadata.sqlite").exists(),
            "berth was given a PostgreSQL database but wrote metadata.sqlite\n{}",
            self.log_tail()
        );
    }

    /// The line is printed once the socket is bound; this also waits for `/v2/` to answer, bounded.
    /// Over TLS (which the harness's HTTP client does not speak) it waits for the port to accept instead;
    /// the TLS tests then speak to it with curl and the containers tools.
    fn wait_ready(&self) {
        if self.running().https {
            let deadline = Instant::now() + START_TIMEOUT;
            while std::net::TcpStream::connect(self.addr()).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "the TLS port did not accept within {START_TIMEOUT:?}\n{}",
                    self.log_tail()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        let api = self.api();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match api.get("/v2/", &[]) {
                // 401: up, and asking for credentials (a server with auth configured).
                Ok(r) if r.status == 200 || r.status == 401 => return,
                other if Instant::now() >= deadline => panic!(
                    "GET /v2/ did not answer 200 within {START_TIMEOUT:?}: {other:?}\n{}",
                    self.log_tail()
                ),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test shows what the server logged, whatever assertion failed.
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        if let Some(mut run) = self.running.take() {
            let _ = run.child.kill();
            let _ = run.child.wait();
            join_reader(&mut run);
        }
    }
}

/// A directory called `name` under `dir`, at most `depth` levels down.
fn find_dir(dir: &Path, name: &str, depth: usize) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if entry.file_name() == name {
            return Some(path);
        }
        if depth > 1
            && let Some(found) = find_dir(&path, name, depth - 1)
        {
            return Some(found);
        }
    }
    None
}

/// Parses `berth listening on http(s)://<ip:port> (data: <absolute root>)`.
pub fn parse_address_line(line: &str) -> Option<(SocketAddr, PathBuf)> {
    let rest = line.strip_prefix("berth listening on ")?;
    let rest = rest
        .strip_prefix("http://")
        .or_else(|| rest.strip_prefix("https://"))?;
    let (addr, rest) = rest.split_once(" (data: ")?;
    let data = rest.strip_suffix(')')?;
    let data = PathBuf::from(data);
    if !data.is_absolute() {
        return None;
    }
    Some((addr.parse().ok()?, data))
}

/// Drop kills the server, but a test process that aborts runs no Drop: on Linux the kernel then kills the
/// server too (PR_SET_PDEATHSIG), so no registry outlives its test. The signal follows the spawning thread,
/// which is the test's own thread for as long as the `Server` is in use.
#[cfg(target_os = "linux")]
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_cmd: &mut Command) {}

fn signal(child: &Child, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) has no memory effects; the pid is our own child, not yet reaped (so not reused).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The stdout reader ends when the process's stdout closes, which follows its exit.
fn join_reader(run: &mut Running) {
    if let Some(h) = run.reader.take() {
        let _ = h.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_line_parses() {
        let (addr, data) =
            parse_address_line("berth listening on http://127.0.0.1:5000 (data: /var/lib/berth)")
                .unwrap();
        assert_eq!(addr.port(), 5000);
        assert_eq!(data, PathBuf::from("/var/lib/berth"));
        assert!(
            parse_address_line("berth listening on http://127.0.0.1:5000 (data: rel)").is_none()
        );
        assert!(parse_address_line("listening on 127.0.0.1:5000").is_none());
        let (addr, _) =
            parse_address_line("berth listening on https://127.0.0.1:5443 (data: /srv)").unwrap();
        assert_eq!(addr.port(), 5443);
    }
}
