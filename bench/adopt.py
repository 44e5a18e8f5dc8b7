#!/usr/bin/env python3
"""Adopting a registry:2 store of 10,000 repositories (issue 19; not part of the test run): how fast
`berth import` indexes registry:2's tree, and `berth serve`'s background adoption of the same tree.

Writes registry:2's tree directly in a temporary directory, as distribution lays it out
(`docker/registry/v2/`): N repositories `teamNN/appNNNNN`, each one image (a layer all share, a config
of its own, --layers layers of its own, the manifest; 100,001 blobs for 10,000 repositories) under the
tags `v1` and `latest`, with every link registry:2 writes
(`_layers`, `_manifests/revisions`, `_manifests/tags/<tag>/current` and `index`). Then runs, over the same
tree, with berth's metadata removed between the two:

- `berth import` in the foreground, to its summary line;
- `berth serve`, until its background adoption logs the same summary and the catalog lists all N.

Prints, per way, the repositories per second, the total time and berth's peak RSS (VmHWM), and for
`berth serve` how soon after its start it answered a first request (the issue's bound: 1 s) and how long
the manifest of the last repository took to come then (long before the background adoption reaches it:
adopted ahead, for that request).

    python3 bench/adopt.py target/release/berth [--repos 10000] [--min-rate 100] [--skip-serve]
        [--workdir DIR [--fill-only]]

Writing the tree is most of the run on a slow disk (about 24 directories per repository): with
--workdir it is written once and reused.

Exits 1 when either way adopts fewer than --min-rate repositories per second, or not every repository,
or when `berth serve` took over 1 s to answer.
"""

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from berthbench.procs import free_port, status_kib  # noqa: E402 - the path above makes it importable

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
SUMMARY = "adopted registry:2's tree:"


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def put_blob(tree, data):
    """Writes `blobs/sha256/<2>/<hex>/data` once; returns the digest."""
    hexd = hashlib.sha256(data).hexdigest()
    path = f"{tree}/blobs/sha256/{hexd[:2]}/{hexd}/data"
    if not os.path.exists(path):
        write(path, data)
    return "sha256:" + hexd


def link(path, digest):
    # registry:2 writes a link without a newline.
    write(path, digest.encode())


def fill(tree, repos, own_layers):
    layer = os.urandom(4096)
    layer_digest = put_blob(tree, layer)
    names = []
    for i in range(repos):
        own = [os.urandom(256) for _ in range(own_layers)]
        own_digests = [put_blob(tree, data) for data in own]
        name = repo_name(i)
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "config": {"Labels": {"n": str(i)}}}
        ).encode()
        config_digest = put_blob(tree, config)
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}]
                + [{"mediaType": OCI_LAYER, "digest": d, "size": len(b)} for d, b in zip(own_digests, own)],
            }
        ).encode()
        manifest_digest = put_blob(tree, body)
        base = f"{tree}/repositories/{name}"
        for digest in [layer_digest, config_digest, *own_digests]:
            link(f"{base}/_layers/sha256/{digest[7:]}/link", digest)
        link(f"{base}/_manifests/revisions/sha256/{manifest_digest[7:]}/link", manifest_digest)
        for tag in ("v1", "latest"):
            link(f"{base}/_manifests/tags/{tag}/current/link", manifest_digest)
            link(f"{base}/_manifests/tags/{tag}/index/sha256/{manifest_digest[7:]}/link", manifest_digest)
        names.append(name)
    return names


def peak_rss_mb(pid):
    kib = status_kib(pid, "VmHWM")
    return None if kib is None else round(kib / 1024, 1)


def env_for(root, port):
    return dict(
        os.environ,
        REGISTRY_HTTP_ADDR=f"127.0.0.1:{port}",
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=root,
        REGISTRY_LOG_LEVEL="info",
    )


def repositories_in(summary):
    m = re.search(r"adopted registry:2's tree: (\d+) repositories", summary)
    return int(m.group(1)) if m else 0


def run_import(binary, root, logpath):
    started = time.perf_counter()
    with open(logpath, "w") as log:
        proc = subprocess.Popen([binary, "import"], env=env_for(root, free_port()), stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    with open(logpath) as f:
        text = f.read()
    if status != 0:
        raise SystemExit(f"berth import failed ({status}):\n{text[-2000:]}")
    summary = next((line for line in text.splitlines() if SUMMARY in line), "")
    # ru_maxrss is in KiB on Linux.
    return seconds, repositories_in(summary), round(usage.ru_maxrss / 1024, 1), summary, (None, None)


def catalog_count(base):
    count, last = 0, None
    while True:
        path = "/v2/_catalog?n=1000" + (f"&last={last}" if last else "")
        with urllib.request.urlopen(base + path, timeout=30) as resp:
            page = json.load(resp)["repositories"]
        if not page:
            return count
        count, last = count + len(page), page[-1]


def repo_name(i):
    return f"team{i % 100:02d}/app{i:05d}"


def pull_manifest(base, repo):
    """Seconds a GET of `repo:latest`'s manifest takes (as the first step of a pull)."""
    started = time.perf_counter()
    req = urllib.request.Request(f"{base}/v2/{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST})
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()
    return time.perf_counter() - started


def run_serve(binary, root, logpath, timeout, last_repo):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with open(logpath, "w") as log:
        proc = subprocess.Popen([binary, "serve"], env=env_for(root, port), stdout=log, stderr=log)
    try:
        summary, listed, first, ahead = "", 0, None, None
        while time.perf_counter() - started < timeout:
            if first is None:
                # The bound: the first request answered within 1 s of the start.
                try:
                    with urllib.request.urlopen(base + "/v2/", timeout=1) as resp:
                        if resp.status == 200:
                            first = time.perf_counter() - started
                except OSError:
                    pass
                if first is not None:
                    # The last repository, which the background adoption reaches last: adopted ahead.
                    ahead = pull_manifest(base, last_repo)
            with open(logpath) as f:
                summary = next((line for line in f if SUMMARY in line), "")
            if summary:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        if summary:
            listed = catalog_count(base)
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
    if not summary:
        raise SystemExit(f"berth serve did not finish adopting within {timeout} s")
    return seconds, min(repositories_in(summary), listed), rss, summary, (first, ahead)


def forget(root):
    """Removes berth's metadata (and nothing else): the next run adopts the tree from nothing."""
    for path in glob.glob(f"{root}/metadata.sqlite*"):
        os.remove(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--repos", type=int, default=10_000)
    ap.add_argument(
        "--layers",
        type=int,
        default=8,
        help="layers of each image besides the shared one (8: 100,001 blobs for 10,000 repositories, "
        "the issue's tree)",
    )
    ap.add_argument("--min-rate", type=float, default=100.0, help="repositories per second, at least")
    ap.add_argument("--skip-serve", action="store_true", help="time `berth import` only")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds the background adoption may take")
    ap.add_argument(
        "--workdir",
        help="keep the tree here (reused when it is there already, so a second run skips the writing); "
        "default: a temporary directory, removed at the end",
    )
    ap.add_argument("--fill-only", action="store_true", help="write the tree (into --workdir) and stop")
    args = ap.parse_args()

    work = args.workdir or tempfile.mkdtemp(prefix="berth-adoptbench-")
    root = f"{work}/data"
    tree = f"{root}/docker/registry/v2"
    done = f"{work}/tree-{args.repos}-{args.layers}"
    results = {}
    try:
        if os.path.exists(done):
            print(f"reusing registry:2's tree of {args.repos} repositories in {work}")
        else:
            shutil.rmtree(root, ignore_errors=True)
            started = time.perf_counter()
            fill(tree, args.repos, args.layers)
            open(done, "w").close()
            print(
                f"wrote registry:2's tree of {args.repos} repositories in {time.perf_counter() - started:.1f} s"
            )
        if args.fill_only:
            return
        forget(root)
        results["berth import"] = run_import(args.binary, root, f"{work}/import.log")
        if not args.skip_serve:
            # The same tree adopted again from nothing.
            forget(root)
            results["berth serve (background)"] = run_serve(
                args.binary, root, f"{work}/serve.log", args.timeout, repo_name(args.repos - 1)
            )
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    failed = False
    print(
        f"{'way':28} {'repositories':>12} {'seconds':>8} {'repos/s':>8} {'peak RSS MB':>12} {'first answer s':>15}"
        f" {'last repo pulled s':>19}"
    )
    for name, (seconds, adopted, rss, _, (first, ahead)) in results.items():
        rate = adopted / seconds if seconds else 0.0
        ok = adopted == args.repos and rate >= args.min_rate and (first is None or first <= 1.0)
        failed |= not ok
        shown = "" if first is None else f"{first:.2f}"
        pulled = "" if ahead is None else f"{ahead:.2f}"
        print(
            f"{name:28} {adopted:>12} {seconds:>8.1f} {rate:>8.0f} {rss:>12} {shown:>15} {pulled:>19}"
            f" {'' if ok else 'UNDER'}"
        )
    for name, (_, _, _, summary, _) in results.items():
        print(f"{name}: {summary[summary.find(SUMMARY) :].strip()}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
