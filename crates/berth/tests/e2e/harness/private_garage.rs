//! A Garage (S3) server of one test's own, which the test may stop and start again: outages cannot be
//! staged on the shared one (`BERTH_TEST_S3_*`), which every other test is using.
//!
//! Started by `scripts/garage.sh` into a temporary directory (one node, a key and a bucket), stopped with
//! its `stop`, and started again from the same configuration file (same ports, same data) with the same
//! binary. Only the binary `scripts/garage.sh` already built is used: a test never starts a 25-minute build.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::s3::S3Bucket;

/// A running (or stopped) private Garage, removed when dropped.
pub struct PrivateGarage {
    dir: tempfile::TempDir,
    bin: PathBuf,
    bucket: S3Bucket,
    port: u16,
    /// The server started again by [`start_again`](Self::start_again), if it was.
    restarted: Option<Child>,
}

impl PrivateGarage {
    /// Starts one; `None` (after saying that `test` skipped) when there is no Garage binary (the S3 tests
    /// are not set up on this machine), except under CI, where that fails.
    pub fn start(test: &str) -> Option<PrivateGarage> {
        let Some(bin) = binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "no Garage binary under CI (scripts/garage.sh builds it)"
            );
            eprintln!(
                "SKIPPED {test}: no Garage binary (scripts/garage.sh builds one into ~/.cache/berth)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-garage-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let out = Command::new(script())
            .arg("start")
            .arg(dir.path())
            .env("BERTH_GARAGE_BIN", &bin)
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/garage.sh: {e}"));
        assert!(
            out.status.success(),
            "scripts/garage.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let var = |name: &str| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("scripts/garage.sh printed no {name}"))
        };
        let endpoint = var("BERTH_TEST_S3_ENDPOINT");
        let port = endpoint
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {endpoint:?}"));
        let bucket = S3Bucket {
            endpoint,
            region: var("BERTH_TEST_S3_REGION"),
            access_key: var("BERTH_TEST_S3_ACCESS_KEY"),
            secret_key: var("BERTH_TEST_S3_SECRET_KEY"),
            bucket: var("BERTH_TEST_S3_BUCKET"),
            root: "/berth-e2e-outage".to_string(),
        };
        Some(PrivateGarage {
            dir,
            bin,
            bucket,
            port,
            restarted: None,
        })
    }

    /// The bucket and a prefix in it, for a server's `storage.s3`.
    pub fn bucket(&self) -> S3Bucket {
        self.bucket.clone()
    }

    /// Stops the server; its port refuses connections afterwards.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.restarted.take() {
            let _ = child.kill();
            let _ = child.wait();
        } else {
            let out = Command::new(script())
                .arg("stop")
                .arg(self.dir.path())
                .output()
                .unwrap_or_else(|e| panic!("cannot run scripts/garage.sh: {e}"));
            assert!(out.status.success(), "scripts/garage.sh stop failed");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "Garage still accepts on {} after stop",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the stopped server again from its configuration (same ports, same data).
    pub fn start_again(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server-again.log"))
            .unwrap_or_else(|e| panic!("cannot create Garage's log: {e}"));
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.restarted = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Garage did not accept on {} again",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivateGarage {
    fn drop(&mut self) {
        if let Some(mut child) = self.restarted.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/garage.sh")
}

/// The binary `scripts/garage.sh` uses: `BERTH_GARAGE_BIN`, else its cache in HOME.
fn binary() -> Option<PathBuf> {
    let bin = match std::env::var_os("BERTH_GARAGE_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(std::env::var_os("HOME")?).join(".cache/berth/garage-2.5.0/bin/garage")
        }
    };
    bin.is_file().then_some(bin)
}
