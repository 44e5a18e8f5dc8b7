#!/usr/bin/env python3
"""Resident memory of berth across bursts of concurrent pushes (issue 21): does it come back when idle?

Starts the given berth binary on a temporary filesystem store, then for each burst pushes `--concurrency`
blobs of `--size` random bytes at once (POST, one PATCH, PUT: what docker sends), and prints the
process's VmRSS (/proc/<pid>/status): its peak during the burst (sampled every 50 ms), right after, and
after `--idle` seconds of no traffic. Pushes over `limits.maxconcurrentuploads` (128) answer 429; they
are counted, not retried.

    python3 bench/memburst.py --berth target/release/berth [--bursts 4] [--concurrency 300] \\
        [--size 1048576] [--idle 12] [--env NAME=VALUE]... [--trim-probe] [--workdir DIR]

`--trim-probe`: at the end, calls malloc_trim(0) in the server through gdb and prints RSS again: what
is left then is memory berth holds, the rest was free memory glibc kept.
"""

import argparse
import collections
import hashlib
import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def push(port, repo, data, outcomes):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
        r = c.getresponse()
        r.read()
        if r.status != 202:
            outcomes.append(f"POST {r.status}")
            return
        c.request("PATCH", r.getheader("Location"), body=data,
                  headers={"Content-Type": "application/octet-stream"})
        r = c.getresponse()
        r.read()
        if r.status != 202:
            outcomes.append(f"PATCH {r.status}")
            return
        loc = r.getheader("Location")
        sep = "&" if "?" in loc else "?"
        c.request("PUT", f"{loc}{sep}digest={digest}", headers={"Content-Length": "0"})
        r = c.getresponse()
        r.read()
        outcomes.append("ok" if r.status == 201 else f"PUT {r.status}")
        c.close()
    except Exception as e:  # noqa: BLE001 - every failure is counted, whatever it is
        outcomes.append(type(e).__name__)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--berth", default="target/release/berth")
    ap.add_argument("--bursts", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=300)
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--idle", type=float, default=12.0)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    ap.add_argument("--trim-probe", action="store_true")
    ap.add_argument("--workdir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the store goes (default /dev/shm: bursts write size x concurrency each)")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="memburst-", dir=a.workdir)
    port = free_port()
    cfg = os.path.join(work, "config.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: warn\nhttp:\n  addr: 127.0.0.1:{port}\n"
                f"storage:\n  filesystem:\n    rootdirectory: {work}/data\n")
    env = dict(os.environ)
    for kv in a.env:
        k, v = kv.split("=", 1)
        env[k] = v
    log = open(os.path.join(work, "log"), "w")
    proc = subprocess.Popen([a.berth, "serve", cfg], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)
        print(f"start: {rss_mb(proc.pid):.1f} MB", flush=True)
        for b in range(a.bursts):
            blobs = [os.urandom(a.size) for _ in range(a.concurrency)]
            outcomes = []
            pushers = [threading.Thread(target=push, args=(port, f"burst/r{i % 10}", d, outcomes))
                       for i, d in enumerate(blobs)]
            peak = 0.0
            started = time.time()
            for t in pushers:
                t.start()
            while any(t.is_alive() for t in pushers):
                peak = max(peak, rss_mb(proc.pid))
                time.sleep(0.05)
            took = time.time() - started
            after = rss_mb(proc.pid)
            time.sleep(a.idle)
            idle = rss_mb(proc.pid)
            failed = collections.Counter(o for o in outcomes if o != "ok")
            pushed = len(outcomes) - sum(failed.values())
            print(f"burst {b + 1}: {took:.1f} s, {pushed} pushed, not: {dict(failed)}; RSS peak {peak:.1f} MB, after {after:.1f} MB, after {a.idle:.0f} s idle "
                  f"{idle:.1f} MB ({threads(proc.pid)} threads)", flush=True)
        if a.trim_probe:
            subprocess.run(["gdb", "-p", str(proc.pid), "-batch", "-ex", "call (int)malloc_trim(0)"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"after malloc_trim(0) through gdb: {rss_mb(proc.pid):.1f} MB", flush=True)
    finally:
        proc.terminate()
        proc.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
