//! A PostgreSQL server of one test's own, which the test may stop and start again: outages cannot be
//! staged on the shared server (`BERTH_TEST_POSTGRES_URL`), which every other test is using.
//!
//! Started by `scripts/postgres.sh` into a temporary directory (it installs Debian's `postgresql` when
//! missing); stopped with `pg_ctl stop -m fast` (every connection is cut, as in a failover); started again
//! with `pg_ctl` on the same port, so a berth configured with that port finds it back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::postgres::Database;

/// A running (or stopped) private server, removed when dropped.
pub struct PrivatePostgres {
    /// Owns the cluster's files.
    dir: tempfile::TempDir,
    url: String,
    port: u16,
}

impl PrivatePostgres {
    /// Starts one; `None` (after saying that `test` skipped) when PostgreSQL's server binaries are not
    /// installed, except under CI, where that fails.
    pub fn start(test: &str) -> Option<PrivatePostgres> {
        if bindir().is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "no PostgreSQL server binaries under /usr/lib/postgresql under CI"
            );
            eprintln!(
                "SKIPPED {test}: no PostgreSQL server binaries (Debian's postgresql package) to start a \
                 server of its own"
            );
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let out = Command::new(script())
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/postgres.sh: {e}"));
        assert!(
            out.status.success(),
            "scripts/postgres.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let port = url
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in the URL {url:?}"));
        Some(PrivatePostgres { dir, url, port })
    }

    /// A new, empty database on this server.
    pub fn database(&self) -> Database {
        Database::create_on(&self.url)
    }

    /// Stops the server at once: every connection is cut (the sessions are terminated, as by a failover),
    /// new ones are refused. A fast shutdown rather than an immediate one: the server runs with
    /// `synchronous_commit=off` (`scripts/postgres.sh`), so a crash would also lose the last commits, and
    /// this test is about berth's behaviour, not about the server's durability.
    pub fn stop(&self) {
        let Some(bindir) = bindir() else {
            panic!("the PostgreSQL binaries went away")
        };
        let out = as_owner(&bindir.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(),
            "PostgreSQL still accepts connections on port {} after stop",
            self.port
        );
    }

    /// Starts the stopped server again on the same port (plain TCP on 127.0.0.1 only, as before; TLS
    /// is not offered again, which berth's `sslmode: disable` does not need).
    pub fn start_again(&self) {
        let Some(bindir) = bindir() else {
            panic!("the PostgreSQL binaries went away")
        };
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories='' -c fsync=off \
             -c max_connections=300",
            self.port
        );
        let mut cmd = as_owner(&bindir.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start", "-o", &options]);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not accept on port {} again",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Best effort; a server left running would keep its port and files.
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres.sh")
}

/// The newest server binaries Debian installed (as `scripts/postgres.sh` picks them).
fn bindir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

/// A command run as the cluster's owner: as root, the `postgres` user (initdb and the server refuse
/// root), as `scripts/postgres.sh` does.
fn as_owner(program: &Path) -> Command {
    // SAFETY: getuid(2) cannot fail and has no effects.
    if unsafe { libc::getuid() } == 0 {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}
