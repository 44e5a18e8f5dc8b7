//! Real clients (skopeo, podman, buildah) run with state of their own per test: a temporary HOME, storage
//! (`vfs`, which needs no kernel overlay support, so it works in containers and as any user), run
//! directory, registries.conf, policy and auth file, so nothing is read from, or left in, the user's or the
//! machine's configuration. Each run is bounded by a timeout and fails with the whole command and output.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Pushes and pulls of a few MiB take seconds; this only stops a hung client.
const TOOL_TIMEOUT: Duration = Duration::from_secs(180);

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub command: String,
}

impl Output {
    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

/// Isolated client state for one test.
pub struct Tools {
    dir: tempfile::TempDir,
}

impl Tools {
    pub fn new() -> Tools {
        // podman names an image pulled from `oci:<path>` after the path, and image names must be lowercase:
        // hence a lowercase name of our own rather than tempfile's mixed-case random suffix.
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "berth-e2e-clients-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::Builder::new()
            .prefix(&name)
            .rand_bytes(0)
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let t = Tools { dir };
        for sub in [
            "home/.config/containers",
            "storage",
            "run",
            "tmp",
            "libpod-tmp",
            "volumes",
            "static",
        ] {
            let p = t.path(sub);
            std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            t.path("storage").display(),
            t.path("run").display()
        );
        // events "none" and cgroupfs: there is no systemd or journald in a container; tmp_dir, static_dir and
        // volume_path keep podman's own state (its database, locks) inside this directory.
        let containers = format!(
            "[engine]\nevents_logger = \"none\"\ncgroup_manager = \"cgroupfs\"\ntmp_dir = \"{}\"\nstatic_dir = \"{}\"\nvolume_path = \"{}\"\n",
            t.path("libpod-tmp").display(),
            t.path("static").display(),
            t.path("volumes").display()
        );
        // No search registries: every reference in the tests is fully qualified, and nothing may reach out.
        let registries = "unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n";
        let policy = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;
        for (name, text) in [
            ("storage.conf", storage.as_str()),
            ("containers.conf", containers.as_str()),
            ("registries.conf", registries),
            ("policy.json", policy),
            ("auth.json", "{}"),
            // Found through HOME by all three tools (c/image looks there before /etc/containers).
            ("home/.config/containers/policy.json", policy),
        ] {
            let p = t.path(name);
            std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
        t
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// A fresh directory inside this test's state, e.g. for an OCI layout.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.path(&format!("scratch/{name}"));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }

    /// The tags of `repo` at `host` as `skopeo list-tags` reports them, sorted.
    pub fn skopeo_tags(&self, host: &str, repo: &str) -> Vec<String> {
        let out = self.skopeo(&[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{host}/{repo}"),
        ]);
        let listed: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("list-tags printed no JSON ({e}): {}", out.stdout));
        let mut tags: Vec<String> = listed["Tags"]
            .as_array()
            .unwrap_or_else(|| panic!("no Tags in {listed}"))
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        tags.sort();
        tags
    }

    /// skopeo with this test's policy; must succeed.
    pub fn skopeo(&self, args: &[&str]) -> Output {
        expect_success(self.try_skopeo(args))
    }

    pub fn try_skopeo(&self, args: &[&str]) -> Output {
        let policy = self.path("policy.json");
        let tmp = self.path("tmp");
        let mut all: Vec<&str> = vec!["--policy", path_str(&policy), "--tmpdir", path_str(&tmp)];
        all.extend_from_slice(args);
        self.run("skopeo", &all)
    }

    /// podman with this test's storage; must succeed.
    pub fn podman(&self, args: &[&str]) -> Output {
        expect_success(self.try_podman(args))
    }

    pub fn try_podman(&self, args: &[&str]) -> Output {
        let (root, run, tmp) = (
            self.path("storage"),
            self.path("run"),
            self.path("libpod-tmp"),
        );
        let mut all: Vec<&str> = vec![
            "--root",
            path_str(&root),
            "--runroot",
            path_str(&run),
            "--tmpdir",
            path_str(&tmp),
            "--storage-driver",
            "vfs",
            "--events-backend",
            "none",
            "--cgroup-manager",
            "cgroupfs",
        ];
        all.extend_from_slice(args);
        self.run("podman", &all)
    }

    /// buildah with this test's storage; must succeed.
    pub fn buildah(&self, args: &[&str]) -> Output {
        expect_success(self.try_buildah(args))
    }

    pub fn try_buildah(&self, args: &[&str]) -> Output {
        let (root, run, conf) = (
            self.path("storage"),
            self.path("run"),
            self.path("registries.conf"),
        );
        let mut all: Vec<&str> = vec![
            "--root",
            path_str(&root),
            "--runroot",
            path_str(&run),
            "--storage-driver",
            "vfs",
            "--registries-conf",
            path_str(&conf),
        ];
        all.extend_from_slice(args);
        self.run("buildah", &all)
    }

    /// curl, ignoring any `.curlrc` (`-q` must come first); must succeed (HTTP errors are not failures
    /// unless `--fail` is passed).
    pub fn curl(&self, args: &[&str]) -> Output {
        expect_success(self.try_curl(args))
    }

    /// curl as [`Tools::curl`], whatever its exit code (a refused certificate is exit 60).
    pub fn try_curl(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = vec!["-q", "--silent", "--show-error", "--max-time", "120"];
        all.extend_from_slice(args);
        self.run("curl", &all)
    }

    /// Runs a program with this test's environment, bounded by [`TOOL_TIMEOUT`].
    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.run_with(program, args, &[])
    }

    /// [`Tools::run`] with more variables, set last so they win (the docker CLI's `DOCKER_HOST` and
    /// `DOCKER_CONFIG`, which this test's daemon decides).
    pub fn run_with(&self, program: &str, args: &[&str], env: &[(&str, &OsStr)]) -> Output {
        let command = format!("{program} {}", args.join(" "));
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("TMPDIR", self.path("tmp"))
            .env("CONTAINERS_STORAGE_CONF", self.path("storage.conf"))
            .env("CONTAINERS_CONF", self.path("containers.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", self.path("registries.conf"))
            .env("REGISTRY_AUTH_FILE", self.path("auth.json"))
            .env_remove("DOCKER_CONFIG")
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINER_CONNECTION")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "{program} is not installed: scripts/test installs the clients the end-to-end suite needs"
            ),
            Err(e) => panic!("cannot run {command}: {e}"),
        };
        // Pipes are drained by threads so a chatty client can never block on a full pipe.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut text = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut text);
                }
                String::from_utf8_lossy(&text).into_owned()
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + TOOL_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let (o, e) = (
                        out.join().unwrap_or_default(),
                        err.join().unwrap_or_default(),
                    );
                    panic!(
                        "`{command}` did not finish within {TOOL_TIMEOUT:?}\n--- stdout ---\n{o}\n--- stderr ---\n{e}"
                    );
                }
                Err(e) => panic!("waiting for `{command}`: {e}"),
            }
        };
        Output {
            success: status.success(),
            code: status.code(),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
            command,
        }
    }
}

impl Drop for Tools {
    /// Rootless podman and buildah store files owned by subordinate ids, which the test's own user cannot
    /// delete: remove the store from inside podman's user namespace first (best effort, bounded). Rootless
    /// podman also leaves a pause process per runtime directory to keep its namespace: end ours.
    fn drop(&mut self) {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            return;
        }
        self.remove_rootless_store();
        for pid_file in pause_pid_files(self.dir.path()) {
            if let Some(pid) = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
                .filter(|&pid| pid > 1)
            {
                // SAFETY: kill(2) has no memory effects; the pid is a pause process of this test's podman.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// Every `pause.pid` under `dir` (podman writes it under its tmp dir, whose place varies by version).
fn pause_pid_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => todo.push(path),
                Ok(t) if t.is_file() && entry.file_name() == "pause.pid" => found.push(path),
                _ => {}
            }
        }
    }
    found
}

impl Tools {
    /// `podman unshare rm -rf` of the store: inside the user namespace the subordinate ids are ours.
    fn remove_rootless_store(&self) {
        let storage = self.path("storage");
        let Ok(mut child) = Command::new("podman")
            .args(["unshare", "rm", "-rf"])
            .arg(&storage)
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("CONTAINERS_STORAGE_CONF", self.path("storage.conf"))
            .env("CONTAINERS_CONF", self.path("containers.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The first line of `<tool> --version`, for the test log.
pub fn version(program: &str) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_else(|e| format!("{program}: {e}"))
}

fn expect_success(out: Output) -> Output {
    assert!(out.success, "{}", out.describe());
    out
}

fn path_str(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
}
