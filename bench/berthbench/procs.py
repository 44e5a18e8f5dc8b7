"""The processes the benchmark starts (berth, registry:2, nginx) and what it reads about them from /proc.

Why a module of its own: every process the run starts must be stopped whatever happens (a failed
workload, Ctrl-C, the driver killed), so they are all started here, registered in one `Procs` list that
the driver's `finally` empties, and given PR_SET_PDEATHSIG so that even a SIGKILLed driver leaves no
server behind. Servers bind 127.0.0.1 only, on ports picked free just before they start.
"""

import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

PR_SET_PDEATHSIG = 1
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _die_with_parent():
    """Runs in the child before exec: the kernel SIGKILLs it if the driver dies without cleaning up."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_port():
    """A port that was free a moment ago on 127.0.0.1 (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """A minimal environment, so that no REGISTRY_* or RUST_LOG of the caller's shell changes a server."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    env.update(extra or {})
    return env


class Proc:
    """One started process: its name, Popen, log file, and the URL it serves."""

    def __init__(self, name, popen, log_path, url):
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.url = url

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""


class Procs:
    """Every process the run started, stopped in reverse order by `stop_all` (called from `finally`)."""

    def __init__(self):
        self.started = []

    def start(self, name, argv, log_path, url, env=None, user=None, group=None, cwd=None):
        log = open(log_path, "ab")
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env if env is not None else clean_env(),
                cwd=cwd,
                preexec_fn=_die_with_parent,
                user=user,
                group=group,
            )
        finally:
            log.close()
        proc = Proc(name, popen, log_path, url)
        self.started.append(proc)
        return proc

    def stop(self, proc, timeout=10):
        """SIGTERM (nginx and both registries exit cleanly on it), SIGKILL if it lingers."""
        if proc.alive():
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self):
        for proc in reversed(list(self.started)):
            try:
                self.stop(proc)
            except OSError:
                pass


def wait_http(proc, path, timeout=30):
    """Waits until `proc` answers `path` with any HTTP status (the registries answer /v2/ with 200)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited at start:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(proc.url + path, timeout=2) as r:
                r.read()
                return
        except urllib.error.HTTPError:
            return
        except OSError as e:
            last = e
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not answer {path} in {timeout}s ({last}):\n{proc.log_tail()}")


def status_kib(pid, field):
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM), in KiB; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def cpu_seconds(pid, with_children=False):
    """User + system CPU of a process (all its threads), plus its children's (nginx's workers) if asked."""
    pids = [pid] + (_children(pid) if with_children else [])
    total = 0.0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Fields after the command: state is [0], utime [11], stime [12] (stat(5) numbers them 14, 15).
        total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return total


class RssSampler:
    """Samples VmRSS of some processes every few milliseconds while a workload runs (a context manager);
    `peak_kib[pid]` is the highest seen. VmHWM covers the whole run; this isolates one workload."""

    def __init__(self, pids, interval=0.01):
        self.pids = list(pids)
        self.interval = interval
        self.peak_kib = {p: 0 for p in self.pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for p in self.pids:
                v = status_kib(p, "VmRSS")
                if v is not None and v > self.peak_kib[p]:
                    self.peak_kib[p] = v
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def run_timed(argv, env=None, cwd=None, check=True, timeout=None):
    """Runs a command to completion; returns (wall seconds, CPU seconds, stdout as text).

    The CPU is the command's own (with its threads and reaped children) from wait4's rusage: that is how
    the load generator's share of the 2 cores is reported next to the servers' figures. Output goes
    through temporary files rather than pipes, so that wait4 can reap the command itself."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=cwd,
            preexec_fn=_die_with_parent,
        )
        # A blocking wait4 (a polling loop would add its period to the time measured); a timer kills the
        # command if it overstays.
        timer = threading.Timer(timeout, popen.kill) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, ru = os.wait4(popen.pid, 0)
        finally:
            if timer:
                timer.cancel()
        wall = time.monotonic() - start
        popen.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if timeout and popen.returncode == -signal.SIGKILL:
        raise RuntimeError(f"{argv[0]} timed out after {timeout}s")
    if check and popen.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({popen.returncode}): {stderr[-2000:]}")
    return wall, ru.ru_utime + ru.ru_stime, stdout
