//! A containerd of the test's own: Debian's `containerd` with a configuration naming its root, state
//! and socket in a temporary directory (nothing of the machine's `/var/lib/containerd` or
//! `/run/containerd` is used), the CRI plugin off, images unpacked by the `native` snapshotter (no kernel
//! overlay needed). `ctr` talks to it in a namespace of the test's; ctr itself is the registry client (it
//! resolves, fetches and pushes in its own process), so its proxy variables point at the same counting
//! sink as docker's: a pull that falls back from a mirror to Docker Hub fails there and is counted.
//! Stopped with SIGTERM when dropped, SIGKILL after a timeout; killed if the test process dies.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::clients::{Output, Tools};
use super::daemons::{HubSink, find_program, stop_child};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The namespace of the tests' images inside this containerd.
const NAMESPACE: &str = "berth-e2e";

/// A running containerd and the client state of its `ctr`.
pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
    tools: Tools,
    hub: HubSink,
}

impl Containerd {
    /// Starts containerd, or returns `None` (having said that `test` skipped) when it is not installed,
    /// except under CI, where that fails (`scripts/test` installs Debian's `containerd`).
    pub fn start(test: &str) -> Option<Containerd> {
        let (Some(containerd), Some(_)) = (find_program("containerd"), find_program("ctr")) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "containerd is not installed under CI (scripts/test installs Debian's containerd)"
            );
            eprintln!("SKIPPED {test}: containerd is not installed (scripts/test installs it)");
            return None;
        };
        eprintln!("{}", super::clients::version(&containerd.to_string_lossy()));
        let dir = tempfile::Builder::new()
            .prefix("berth-ctrd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let d = dir.path();
        let config = d.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\n[grpc]\n  address = \"{sock}\"\n\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\n[debug]\n  address = \"{debug}\"\n",
                root = d.join("root").display(),
                state = d.join("state").display(),
                sock = d.join("containerd.sock").display(),
                debug = d.join("debug.sock").display(),
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let log = std::fs::File::create(d.join("containerd.log"))
            .unwrap_or_else(|e| panic!("cannot create containerd's log: {e}"));
        let mut cmd = Command::new(&containerd);
        cmd.arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log.try_clone()
                    .unwrap_or_else(|e| panic!("containerd's log: {e}")),
            ))
            .stderr(Stdio::from(log));
        super::server::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", containerd.display()));
        let daemon = Containerd {
            child,
            dir,
            tools: Tools::new(),
            hub: HubSink::start(),
        };
        daemon.wait_ready();
        Some(daemon)
    }

    /// The client state (HOME, skopeo's policy) of this containerd's tests.
    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// `ctr <args>` against this containerd, in the tests' namespace; must succeed.
    pub fn ctr(&self, args: &[&str]) -> Output {
        let out = self.try_ctr(args);
        assert!(out.success, "{}\n{}", out.describe(), self.log_tail());
        out
    }

    /// `ctr <args>`, whatever its exit code.
    pub fn try_ctr(&self, args: &[&str]) -> Output {
        let socket = self.socket();
        let mut all = vec!["--address", socket.to_str().unwrap_or_default()];
        all.extend(["--namespace", NAMESPACE]);
        all.extend_from_slice(args);
        let hub = self.hub.url();
        self.tools.run_with(
            "ctr",
            &all,
            &[
                ("HTTPS_PROXY", OsStr::new(&hub)),
                ("HTTP_PROXY", OsStr::new(&hub)),
            ],
        )
    }

    /// The digest of the top-level manifest (or index) `ctr images ls` lists for `reference`.
    pub fn image_digest(&self, reference: &str) -> String {
        let out = self.ctr(&["images", "ls"]);
        out.stdout
            .lines()
            .find_map(|l| {
                let mut cols = l.split_whitespace();
                (cols.next() == Some(reference))
                    .then(|| cols.find(|c| c.starts_with("sha256:")))
                    .flatten()
            })
            .unwrap_or_else(|| panic!("{reference} is not in `ctr images ls`:\n{}", out.stdout))
            .to_owned()
    }

    /// Connections ctr opened towards anything but a loopback registry (Docker Hub): refused.
    pub fn hub_attempts(&self) -> usize {
        self.hub.count()
    }

    /// The directory `--hosts-dir` names: `<dir>/<registry>/hosts.toml`.
    pub fn hosts_dir(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }

    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        format!(
            "--- last lines of containerd's log ---\n{}",
            lines[start..].join("\n")
        )
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// Waits until `ctr version` reaches the daemon.
    fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.socket().exists() && self.try_ctr(&["version"]).success {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer within {START_TIMEOUT:?}\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        stop_child(&mut self.child, STOP_TIMEOUT);
    }
}
