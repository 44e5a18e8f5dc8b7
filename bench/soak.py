#!/usr/bin/env python3
"""Soak test of berth (issue 21; not part of the test run): mixed traffic for a while, then a check.

Starts two berths on temporary filesystem stores: an upstream, and the registry under test, which mirrors
the upstream under the name prefix `cache/` (`proxy.upstreams`) and keeps its own repositories beside.
Workers then push images (a config and one to three layers of 1 KiB to 1 MiB), pull them back whole,
delete some by digest, pull through the cache, and list tags, in random order, while a garbage collection
with deletion of untagged manifests runs every GC_EVERY seconds (`berth gc -m --grace 20s`, beside the
serving registry as an operator would run it). Past MAX_LIVE images a push also deletes one, so the
store holds a steady amount and the garbage collector frees the rest. Every 5 s the registry's resident
memory, open file descriptors, threads and bytes on disk are sampled.

It passes when, at the end:
- no request was answered 5xx, and none failed on the connection;
- every image whose manifest PUT was acknowledged and that was not deleted pulls back byte for byte
  (manifest and every blob, hashed);
- memory, descriptors and threads stayed bounded: the highest sample of the last third of the run is at
  most 1.5 times (memory) or 1.25 times plus 8 (descriptors, threads) the highest of the first third.

    python3 bench/soak.py target/release/berth [--minutes 30] [--workers 8]

Prints one JSON object (counts, samples, failures) and exits 1 on a failure.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
GC_EVERY = 30
MAX_LIVE = 300


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Berth:
    """One berth process on a temporary directory, with `config` written as its configuration file."""

    def __init__(self, binary, config_text):
        self.dir = tempfile.mkdtemp(prefix="berth-soak-")
        self.port = free_port()
        self.config = os.path.join(self.dir, "config.yml")
        with open(self.config, "w") as f:
            f.write(
                f"version: 0.1\nhttp:\n  addr: 127.0.0.1:{self.port}\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.dir}/data\n  delete:\n    enabled: true\n"
                "log:\n  level: warn\n" + config_text
            )
        self.binary = binary
        self.log = open(os.path.join(self.dir, "log"), "w")  # noqa: SIM115 (open while berth runs)
        self.proc = subprocess.Popen([binary, "serve", self.config], stdout=self.log, stderr=self.log)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=2).read()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"berth did not start; see {self.dir}/log")

    def sample(self):
        pid = self.proc.pid
        with open(f"/proc/{pid}/status") as f:
            rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        disk = 0
        for parent, _, files in os.walk(os.path.join(self.dir, "data")):
            for name in files:
                try:
                    disk += os.lstat(os.path.join(parent, name)).st_size
                except FileNotFoundError:
                    pass
        return {
            "rss_mb": round(rss_kb / 1024, 1),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": len(os.listdir(f"/proc/{pid}/task")),
            "disk_mb": round(disk / 2**20, 1),
        }

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


class Client:
    """HTTP against one registry, counting what went wrong."""

    def __init__(self, base, tally):
        self.base = base
        self.tally = tally

    def request(self, method, path, data=None, headers=None):
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            body = e.read()
            if e.code >= 500:
                self.tally.fail(f"{method} {path}: {e.code} {body[:200]!r}")
            return e.code, body, e.headers
        except OSError as e:
            self.tally.fail(f"{method} {path}: {e}")
            return None, b"", {}

    def push_blob(self, repo, data):
        dg = digest_of(data)
        status, _, _ = self.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/?digest={dg}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        return dg if status == 201 else None

    def push_image(self, repo, tag, rng):
        """Pushes a fresh image; its record when the manifest PUT was acknowledged, else None."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "seed": rng.random()}).encode()
        layers = [
            os.urandom(rng.choice([1024, 16 * 1024, 256 * 1024, 1024 * 1024]))
            for _ in range(rng.randint(1, 3))
        ]
        blobs = {}
        for data in [config, *layers]:
            dg = self.push_blob(repo, data)
            if dg is None:
                return None
            blobs[dg] = hashlib.sha256(data).hexdigest()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(x), "size": len(x)} for x in layers],
            }
        ).encode()
        status, _, _ = self.request(
            "PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST}
        )
        if status != 201:
            return None
        return {"repo": repo, "tag": tag, "digest": digest_of(manifest), "manifest": manifest, "blobs": blobs}

    def check_image(self, image):
        """Whether `image` pulls back byte for byte (by digest: its tag may have moved)."""
        repo = image["repo"]
        status, body, _ = self.request(
            "GET", f"/v2/{repo}/manifests/{image['digest']}", headers={"Accept": OCI_MANIFEST}
        )
        if status != 200 or body != image["manifest"]:
            return f"{repo}@{image['digest']}: manifest answered {status}"
        for dg, sha in image["blobs"].items():
            status, body, _ = self.request("GET", f"/v2/{repo}/blobs/{dg}")
            if status != 200 or hashlib.sha256(body).hexdigest() != sha:
                return f"{repo} blob {dg}: answered {status}, {len(body)} bytes"
        return None


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []

    def count(self, op):
        with self.lock:
            self.counts[op] = self.counts.get(op, 0) + 1

    def fail(self, what):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(what)
            self.counts["failures"] = self.counts.get("failures", 0) + 1


class Images:
    """The acknowledged images still expected to pull back."""

    def __init__(self):
        self.lock = threading.Lock()
        self.live = []

    def add(self, image, rng):
        """Adds `image`; past MAX_LIVE, takes a random other one out and returns it, to delete."""
        with self.lock:
            self.live.append(image)
            if len(self.live) > MAX_LIVE:
                return self.live.pop(rng.randrange(len(self.live) - 1))
        return None

    def pick(self, rng, remove=False):
        with self.lock:
            if not self.live:
                return None
            i = rng.randrange(len(self.live))
            return self.live.pop(i) if remove else self.live[i]


def delete(client, image, tally):
    status, _, _ = client.request("DELETE", f"/v2/{image['repo']}/manifests/{image['digest']}")
    # 404: the same manifest pushed twice (a one-layer image of equal bytes) and deleted already.
    if status not in (202, 404):
        tally.fail(f"delete {image['repo']}@{image['digest']}: {status}")
    tally.count("deleted")


def worker(n, client, upstream_tags, images, tally, until):
    rng = random.Random(n)
    i = 0
    while time.time() < until:
        i += 1
        op = rng.choices(["push", "pull", "delete", "proxy", "tags"], weights=[4, 6, 1, 3, 1])[0]
        if op == "push":
            image = client.push_image(f"soak/r{rng.randrange(20)}", f"w{n}-{i}", rng)
            if image and (old := images.add(image, rng)):
                delete(client, old, tally)
        elif op == "pull":
            image = images.pick(rng)
            if image and (why := client.check_image(image)):
                # Deleted meanwhile by another worker is fine; a live image failing is not.
                with images.lock:
                    live = image in images.live
                if live:
                    tally.fail(why)
        elif op == "delete":
            image = images.pick(rng, remove=True)
            if image:
                delete(client, image, tally)
        elif op == "proxy":
            repo, tag, image = rng.choice(upstream_tags)
            cached = dict(image, repo=f"cache/{repo}")
            status, _, _ = client.request(
                "GET", f"/v2/cache/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}
            )
            if status != 200:
                tally.fail(f"proxy manifest {repo}:{tag}: {status}")
            elif why := client.check_image(cached):
                tally.fail("proxy " + why)
        else:
            client.request("GET", f"/v2/soak/r{rng.randrange(20)}/tags/list")
        tally.count(op)


def gc_loop(berth, tally, until):
    while time.time() + GC_EVERY < until:
        time.sleep(GC_EVERY)
        out = subprocess.run(
            [berth.binary, "gc", berth.config, "-m", "--grace", "20s"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            tally.fail(f"gc exited {out.returncode}: {out.stderr[-300:]}")
        tally.count("gc")


def bounded(samples, key, factor, slack):
    third = max(1, len(samples) // 3)
    first = max(s[key] for s in samples[:third])
    last = max(s[key] for s in samples[-third:])
    return last <= first * factor + slack, first, last


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()

    upstream = Berth(args.binary, "")
    tally = Tally()
    up = Client(upstream.url, tally)
    rng = random.Random(0)
    upstream_tags = []
    for i in range(10):
        image = up.push_image(f"base/b{i}", "v1", rng)
        if image is None:
            raise SystemExit("could not fill the upstream")
        upstream_tags.append((f"base/b{i}", "v1", image))
    registry = Berth(
        args.binary,
        f"proxy:\n  revalidate: 10s\n  upstreams:\n    - prefix: cache\n      remoteurl: {upstream.url}\n",
    )
    client = Client(registry.url, tally)
    images = Images()
    until = time.time() + args.minutes * 60
    threads = [
        threading.Thread(target=worker, args=(n, client, upstream_tags, images, tally, until))
        for n in range(args.workers)
    ]
    threads.append(threading.Thread(target=gc_loop, args=(registry, tally, until)))
    for t in threads:
        t.start()
    samples = []
    while any(t.is_alive() for t in threads):
        samples.append(registry.sample())
        time.sleep(5)
    samples.append(registry.sample())

    for image in images.live:
        if why := client.check_image(image):
            tally.fail("at the end: " + why)
    checks = {
        key: bounded(samples, key, factor, slack)
        for key, factor, slack in [("rss_mb", 1.5, 0), ("fds", 1.25, 8), ("threads", 1.25, 8)]
    }
    for key, (ok, first, last) in checks.items():
        if not ok:
            tally.fail(f"{key} grew: {first} in the first third, {last} in the last")
    result = {
        "minutes": args.minutes,
        "workers": args.workers,
        "counts": tally.counts,
        "images_checked_at_end": len(images.live),
        "peak": {k: max(s[k] for s in samples) for k in samples[0]},
        "bounds": {k: {"first_third": v[1], "last_third": v[2]} for k, v in checks.items()},
        "failures": tally.failures,
    }
    print(json.dumps(result, indent=2))
    registry.stop()
    upstream.stop()
    sys.exit(1 if tally.failures else 0)


if __name__ == "__main__":
    main()
