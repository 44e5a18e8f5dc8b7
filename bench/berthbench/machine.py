"""The machine's own limits on the benchmark's data, and the facts recorded with every run.

The limits are what no registry can beat on this machine: hashing the blob (`openssl dgst -sha256`, with
SHA extensions where the CPU has them), reading it from the page cache, writing it durably
(`dd conv=fdatasync`: a registry that fsyncs a push cannot be faster), and nginx sending it with
sendfile. They are measured in the same run, between the registries' turns, because this machine is
shared and its speed drifts.
"""

import datetime
import os
import platform
import re
import socket
import subprocess

from . import procs


def sha256_mbps(path, size):
    """`openssl dgst -sha256` over the file (in the page cache): MB/s."""
    wall, _, _ = procs.run_timed(["openssl", "dgst", "-sha256", path])
    return size / wall / 1e6


def page_cache_read_mbps(path, size):
    """Reading the file from the page cache into /dev/null with 1 MiB reads: MB/s."""
    wall, _, _ = procs.run_timed(["dd", f"if={path}", "of=/dev/null", "bs=1M"])
    return size / wall / 1e6


def durable_write_mbps(path, size, scratch):
    """Copying the file to the disk and fdatasync-ing it (what a durable push must at least do): MB/s."""
    os.sync()
    try:
        wall, _, _ = procs.run_timed(["dd", f"if={path}", f"of={scratch}", "bs=1M", "conv=fdatasync"])
    finally:
        if os.path.exists(scratch):
            os.remove(scratch)
    return size / wall / 1e6


def _first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or "") + (out.stderr or "")
    return text.strip().splitlines()[0] if text.strip() else None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return None
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), None
    )
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    return {"model": model, "sha_ni": "sha_ni" in flags}


def _mem_total_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / 1e6
    return None


def fs_type(path):
    """The filesystem `path` is on, as mounted (`findmnt`: ext4, xfs, tmpfs...). `stat -f` is only the
    fallback: it names ext2, ext3 and ext4 alike "ext2/ext3" (they share a magic number)."""
    return _first_line(["findmnt", "-n", "-o", "FSTYPE", "--target", path]) or _first_line(
        ["stat", "-f", "-c", "%T", path]
    )


def _loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def _git(repo, *args):
    try:
        out = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def berth_provenance(repo, binary):
    """Which source a berth binary was built from: the commit bench/build-rev.sh named its directory
    after, or else the work tree's HEAD and whether the crates had uncommitted changes."""
    found = re.search(r"bench-builds/([0-9a-f]{40})/", os.path.abspath(binary))
    if found:
        return {"commit": found.group(1)[:12], "dirty": False}
    dirty = _git(repo, "status", "--porcelain", "--", "crates", "Cargo.toml", "Cargo.lock")
    return {"commit": _git(repo, "rev-parse", "--short=12", "HEAD"), "dirty": bool(dirty)}


def _label(built):
    return f"{built['commit']}{' with uncommitted changes' if built['dirty'] else ''}"


def facts(repo, work, berth, baseline=None):
    """Where and when the run happened, with the version of every program it ran."""
    built = berth_provenance(repo, berth)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": socket.gethostname(),
        "kernel": platform.release(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_mb": _mem_total_mb(),
        "work_dir_fs": fs_type(work),
        "loadavg_start": _loadavg(),
        "berth_commit": built["commit"],
        "berth_tree_dirty": built["dirty"],
        "baseline_commit": _label(berth_provenance(repo, baseline)) if baseline else None,
        "versions": {
            "registry2": _first_line(["docker-registry", "--version"]),
            "nginx": _first_line(["nginx", "-v"]),
            "wrk": (_first_line(["wrk", "--version"]) or "").split(" Copyright")[0] or None,
            "skopeo": _first_line(["skopeo", "--version"]),
            "openssl": _first_line(["openssl", "version"]),
            "python": platform.python_version(),
        },
    }


def loadavg():
    return _loadavg()
