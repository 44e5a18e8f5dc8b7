//! A docker daemon of the test's own: Debian's `dockerd` (which starts its own containerd) with its data
//! root, exec root, pid file and socket in a temporary directory, no bridge and no iptables (it touches
//! nothing of the machine's network), `vfs` storage (no kernel overlay needed), and the docker CLI pointed
//! at it with a config directory of its own (so `docker login` writes nowhere else). Stopped with
//! SIGTERM when dropped, SIGKILL after a timeout; killed by the kernel if the test process dies first.
//!
//! Docker Hub is never reached: the daemon's `HTTPS_PROXY` and `HTTP_PROXY` are a listener of the test
//! that counts the connections it gets and closes them. Go never proxies loopback addresses, so the
//! registries under test are reached directly, and a pull that would fall back from a mirror to Docker
//! Hub fails at once and shows in [`Dockerd::hub_attempts`].

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::clients::{Output, Tools};
use super::daemons::{HubSink, find_program, stop_child};

/// A daemon starts in about a second; this bounds a start that hangs.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// dockerd stops its containerd on SIGTERM; after this it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// What the daemon is started with beyond the fixed flags.
#[derive(Clone, Debug, Default)]
pub struct DockerdSettings {
    /// `--registry-mirror` URLs (docker uses them for Docker Hub's images only).
    pub mirrors: Vec<String>,
    // No `--insecure-registry`: docker takes every registry on 127.0.0.0/8 for plain HTTP already, and
    // the tests' servers listen on nothing else.
}

/// A running dockerd and the CLI state that goes with it.
pub struct Dockerd {
    child: Child,
    /// Holds the daemon's directories; the client state (HOME, DOCKER_CONFIG) is in `tools`.
    dir: tempfile::TempDir,
    tools: Tools,
    hub: HubSink,
}

impl Dockerd {
    /// Starts a daemon, or returns `None` (having said that `test` skipped) when dockerd is not installed,
    /// except under CI, where that fails (`scripts/test` installs Debian's `docker.io`).
    pub fn start(test: &str, settings: &DockerdSettings) -> Option<Dockerd> {
        let Some(dockerd) = find_program("dockerd") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "dockerd is not installed under CI (scripts/test installs Debian's docker.io)"
            );
            eprintln!("SKIPPED {test}: dockerd is not installed (scripts/test installs docker.io)");
            return None;
        };
        eprintln!("{}", super::clients::version(&dockerd.to_string_lossy()));
        // Short: the socket's path must stay under the 108 bytes of a unix socket address.
        let dir = tempfile::Builder::new()
            .prefix("berth-dockerd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let d = dir.path();
        let hub = HubSink::start();
        let log = std::fs::File::create(d.join("dockerd.log"))
            .unwrap_or_else(|e| panic!("cannot create dockerd's log: {e}"));
        let mut cmd = Command::new(&dockerd);
        cmd.arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ])
            // Its own config file (none): the machine's /etc/docker/daemon.json must not apply.
            .arg("--config-file")
            .arg(d.join("daemon.json"));
        for m in &settings.mirrors {
            cmd.args(["--registry-mirror", m]);
        }
        std::fs::write(d.join("daemon.json"), "{}")
            .unwrap_or_else(|e| panic!("cannot write daemon.json: {e}"));
        cmd.env("HTTPS_PROXY", hub.url())
            .env("HTTP_PROXY", hub.url())
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log.try_clone()
                    .unwrap_or_else(|e| panic!("dockerd's log: {e}")),
            ))
            .stderr(Stdio::from(log));
        super::server::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", dockerd.display()));
        let daemon = Dockerd {
            child,
            dir,
            tools: Tools::new(),
            hub,
        };
        daemon.wait_ready();
        Some(daemon)
    }

    /// The client state of this daemon's CLI (and skopeo's, for the tests' images).
    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// `docker <args>` against this daemon; must succeed.
    pub fn docker(&self, args: &[&str]) -> Output {
        let out = self.try_docker(args);
        assert!(out.success, "{}\n{}", out.describe(), self.log_tail());
        out
    }

    /// `docker <args>` against this daemon, whatever its exit code.
    pub fn try_docker(&self, args: &[&str]) -> Output {
        let host = format!("unix://{}", self.socket().display());
        let config = self.tools.path("docker-config");
        self.tools.run_with(
            "docker",
            args,
            &[
                ("DOCKER_HOST", OsStr::new(&host)),
                ("DOCKER_CONFIG", config.as_os_str()),
            ],
        )
    }

    /// Loads the image `tag` of the OCI layout `layout` as `name` (`repo:tag`): skopeo writes a
    /// docker-archive, `docker load` reads it.
    pub fn load_layout(&self, layout: &Path, tag: &str, name: &str) {
        let archive = self
            .tools
            .path(&format!("tmp/{}.tar", name.replace(['/', ':'], "_")));
        let _ = std::fs::remove_file(&archive);
        self.tools.skopeo(&[
            "copy",
            &format!("oci:{}:{tag}", layout.display()),
            &format!("docker-archive:{}:{name}", archive.display()),
        ]);
        self.docker(&["load", "-i", &archive.to_string_lossy()]);
    }

    /// `docker image inspect --format <format> <image>`, trimmed.
    pub fn inspect(&self, image: &str, format: &str) -> String {
        self.docker(&["image", "inspect", "--format", format, image])
            .stdout
            .trim()
            .to_owned()
    }

    /// Connections the daemon opened towards anything but a loopback registry (Docker Hub): refused.
    pub fn hub_attempts(&self) -> usize {
        self.hub.count()
    }

    /// The last lines dockerd logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        // containerd's start-up and gRPC chatter says nothing about a failed pull or push.
        let tail: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("module=grpc") && !l.contains("loading plugin"))
            .rev()
            .take(40)
            .collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("--- last lines of dockerd's log ---\n{}", tail.join("\n"))
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// Waits until the API answers `GET /_ping` with `OK`.
    fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ping(&self.socket()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within {START_TIMEOUT:?}\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        stop_child(&mut self.child, STOP_TIMEOUT);
        // A container on the host network leaves dockerd's bind mount of that namespace behind (and a
        // killed daemon its others): unmounted, or the directory could not be removed.
        unmount_under(self.dir.path());
        // dockerd stops the containerd it started; one left by a killed dockerd is ended here.
        let pid_file = self.dir.path().join("exec/containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
            .filter(|&pid| pid > 1)
            // Only while that pid is still a containerd: a pid of a process long gone may be reused.
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "containerd")
            })
        {
            // SAFETY: kill(2) has no memory effects; the pid is the containerd this daemon started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Detaches every mount at or below `dir` (deepest first), as /proc/self/mountinfo lists them.
fn unmount_under(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        let Ok(c) = std::ffi::CString::new(point.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: umount2(2) with a valid NUL-terminated path; MNT_DETACH cannot block.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// `GET /_ping` over the daemon's socket.
fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ") && answer.ends_with("OK")
}
