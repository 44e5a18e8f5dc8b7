//! registry:2 itself (Debian's `docker-registry`, distribution 2.8) as another registry of the tests: the
//! upstream of a berth pull-through cache, where berth must fetch from the reference implementation and
//! not only from itself. It runs on `127.0.0.1` and a free port over a temporary directory, its access
//! log in a file the test reads to count what berth asked of it; killed when dropped. `start_on` runs it
//! over a data directory of the test's (the volume a registry:2 user hands to berth, and back).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Api;
use super::daemons::find_program;

const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Registry2 {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Registry2 {
    /// Starts registry:2, or returns `None` (having said that `test` skipped) when it is not installed,
    /// except under CI, where that fails (`scripts/test` installs Debian's `docker-registry`).
    pub fn start(test: &str) -> Option<Registry2> {
        Registry2::start_on(test, None)
    }

    /// [`start`](Self::start) over the data directory `root` (its `storage.filesystem.rootdirectory`),
    /// or a fresh one of its own.
    pub fn start_on(test: &str, root: Option<&std::path::Path>) -> Option<Registry2> {
        Registry2::start_with(test, |dir| {
            let root = root.map_or_else(|| dir.join("data"), |r| r.to_path_buf());
            format!("  filesystem:\n    rootdirectory: {}\n", root.display())
        })
    }

    /// [`start`](Self::start) over the bucket and prefix `s3` (registry:2's `storage.s3`).
    pub fn start_on_s3(test: &str, s3: &super::s3::S3Bucket) -> Option<Registry2> {
        Registry2::start_with(test, |_| {
            let secure = s3.endpoint.starts_with("https://");
            format!(
                "  s3:\n    accesskey: {:?}\n    secretkey: {:?}\n    region: {:?}\n    regionendpoint: {:?}\n    \
                 bucket: {:?}\n    rootdirectory: {:?}\n    secure: {secure}\n    v4auth: true\n",
                s3.access_key, s3.secret_key, s3.region, s3.endpoint, s3.bucket, s3.root
            )
        })
    }

    /// Starts registry:2 with the `storage` section's driver lines `driver(dir)` writes (given its
    /// temporary directory).
    fn start_with(test: &str, driver: impl Fn(&std::path::Path) -> String) -> Option<Registry2> {
        let Some(program) = find_program("docker-registry") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "docker-registry is not installed under CI (scripts/test installs it)"
            );
            eprintln!(
                "SKIPPED {test}: docker-registry is not installed (scripts/test installs it)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-registry2-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        // Another process may take the port between the probe and registry:2's bind: a few tries.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap_or_else(|e| panic!("no free port: {e}"));
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n{}  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                    driver(dir.path())
                ),
            )
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
            let log = std::fs::File::create(dir.path().join("registry.log"))
                .unwrap_or_else(|e| panic!("cannot create registry:2's log: {e}"));
            let mut cmd = Command::new(&program);
            // The AWS SDK in registry:2 would read a CA bundle named by the environment (and fail on
            // its plain-HTTP transport); nothing of the caller's AWS setup is the test's.
            for (key, _) in std::env::vars_os() {
                if key.to_str().is_some_and(|k| k.starts_with("AWS_")) {
                    cmd.env_remove(&key);
                }
            }
            cmd.arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::from(
                    log.try_clone()
                        .unwrap_or_else(|e| panic!("registry:2's log: {e}")),
                ))
                .stderr(Stdio::from(log));
            super::server::die_with_parent(&mut cmd);
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            let api = Api::new(&format!("http://127.0.0.1:{port}"));
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if api.get("/v2/", &[]).is_ok_and(|r| r.status == 200) {
                    return Some(Registry2 { child, dir, port });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // The port was taken; try another.
                }
                assert!(
                    Instant::now() < deadline,
                    "registry:2 did not answer within {START_TIMEOUT:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!(
            "registry:2 did not start:\n{}",
            std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// `127.0.0.1:port`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// Requests registry:2 answered whose request line contains `needle` (its access log).
    pub fn requests(&self, needle: &str) -> usize {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }
}

impl Drop for Registry2 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
