#!/usr/bin/env python3
"""The web interface's speed at scale (issue 22; not part of the test run): every page (and every
answer of its JSON API, /api/v1/) under 50 ms and the heaviest under 200 KB, with 10,000 repositories and
one repository of 1,000 tags.

Starts BERTH on a temporary filesystem store, fills it through the API (10,000 repositories of one
image each, their blobs mounted from a seed repository, and `big/tags` with 1,000 distinct images),
then requests each page ROUNDS times in turn and prints, per page, the median and the 95th percentile
of the time to the last byte (loopback, so nearly all of it is the server's) and the page's size.

    python3 bench/ui.py target/release/berth [--repos 10000] [--tags 1000] [--rounds 20]

Exits 1 when a page misses either bound.
"""

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
LIMIT_MS = 50
LIMIT_BYTES = 200 * 1024


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def request(base, method, path, data=None, headers=None):
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def manifest(config, layer):
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)}],
        }
    ).encode()


def put(base, repo, tag, body):
    status, text = request(base, "PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": OCI_MANIFEST})
    if status != 201:
        raise SystemExit(f"PUT {repo}:{tag}: {status} {text[:200]!r}")
    return digest_of(body)


def push_blob(base, repo, data):
    status, text = request(
        base,
        "POST",
        f"/v2/{repo}/blobs/uploads/?digest={digest_of(data)}",
        data,
        {"Content-Type": "application/octet-stream"},
    )
    if status != 201:
        raise SystemExit(f"push {repo}: {status} {text[:200]!r}")


def fill(base, repos, tags):
    layer = os.urandom(300_000)
    config = b'{"architecture":"amd64","os":"linux"}'
    for data in (layer, config):
        push_blob(base, "seed/base", data)
    body = manifest(config, layer)

    def one(i):
        repo = f"team{i % 100:02d}/app{i:05d}"
        for data in (config, layer):
            request(base, "POST", f"/v2/{repo}/blobs/uploads/?mount={digest_of(data)}&from=seed/base", b"")
        put(base, repo, "v1", body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(repos)))

    digests = []
    push_blob(base, "big/tags", layer)

    def tag(i):
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "n": i}).encode()
        push_blob(base, "big/tags", cfg)
        return put(base, "big/tags", f"t{i:04d}", manifest(cfg, layer))

    with ThreadPoolExecutor(8) as pool:
        digests = list(pool.map(tag, range(tags)))
    return digests


def measure(base, path, rounds):
    times, size = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        status, body = request(base, "GET", path)
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:200]!r}")
        size = len(body)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
        "bytes": size,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--repos", type=int, default=10_000)
    ap.add_argument("--tags", type=int, default=1_000)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()

    root = tempfile.mkdtemp(prefix="berth-uibench-")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = dict(
        os.environ,
        REGISTRY_HTTP_ADDR=f"127.0.0.1:{port}",
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=f"{root}/data",
        REGISTRY_LOG_LEVEL="warn",
    )
    with open(f"{root}/log", "w") as log:
        proc = subprocess.Popen([args.binary, "serve"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/v2/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        started = time.time()
        digests = fill(base, args.repos, args.tags)
        filled_s = round(time.time() - started, 1)
        middle = f"team50/app{args.repos // 2:05d}"
        pages = {
            "repositories, first page": "/ui/",
            "repositories, a middle page": f"/ui/?last={middle}",
            "search, one match": f"/ui/?q=app{args.repos - 1:05d}",
            "search, no match (walks every repository)": "/ui/?q=nothing-matches",
            "1,000 tags, first page": "/ui/repo/big/tags",
            "1,000 tags, a middle page": "/ui/repo/big/tags?last=t0500",
            "an image": f"/ui/image/big/tags@{digests[0]}",
            "the registry": "/ui/registry",
            "api: repositories, first page": "/api/v1/repositories",
            "api: 1,000 tags, first page": "/api/v1/repositories/big/tags/tags",
            "api: an image": f"/api/v1/repositories/big/tags/manifests/{digests[0]}",
            "api: the registry": "/api/v1/registry",
        }
        results = {name: measure(base, path, args.rounds) for name, path in pages.items()}
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)

    failed = False
    print(f"filled {args.repos} repositories and {args.tags} tags in {filled_s} s")
    print(f"{'page':45} {'median ms':>10} {'p95 ms':>8} {'bytes':>8}")
    for name, r in results.items():
        ok = r["p95_ms"] <= LIMIT_MS and r["bytes"] <= LIMIT_BYTES
        failed |= not ok
        print(f"{name:45} {r['median_ms']:>10} {r['p95_ms']:>8} {r['bytes']:>8} {'' if ok else 'OVER'}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
