"""`--suite s3`: berth with its blobs on Garage and its metadata in PostgreSQL, beside registry:2 with its
S3 driver on the same Garage (another `rootdirectory` in the same bucket), as issue 6 asks.

Workloads, alternated between the two registries on every repetition: a monolithic push of a 1 GiB blob
(POST + one PUT, sent with sendfile; a new blob each time) and its pull (MB/s, bytes through the
registry: registry:2's redirect to presigned URLs is disabled, as berth's is by default, so both serve the
bytes themselves); then the latency of a catalog page of 100 out of 10,000 repositories.

Seeding 10,000 repositories goes through the API (two mounted blobs and one small shared manifest per
repository, 8 clients) within a time budget per registry (`--seed-seconds`): registry:2 writes several S3
objects per repository, so it may not reach 10,000 in the budget; the report then says how many it has,
and its catalog time at that count is a lower bound (registry:2 lists the whole tree for every page).
"""

import json
import os
import threading
import time
import urllib.parse

from . import client, procs
from .suites import median, start_server

SEED_REPO = "bench/seed"


def _berth_config(s3, pg):
    u = urllib.parse.urlsplit(pg)
    return [
        "version: 0.1",
        "http:",
        "  addr: 127.0.0.1:{port}",
        "storage:",
        "  s3:",
        f"    accesskey: {s3['ACCESS_KEY']}",
        f"    secretkey: {s3['SECRET_KEY']}",
        f"    region: {s3['REGION']}",
        f"    regionendpoint: {s3['ENDPOINT']}",
        f"    bucket: {s3['BUCKET']}",
        "    rootdirectory: /berth",
        "    forcepathstyle: true",
        "  delete:",
        "    enabled: true",
        "database:",
        "  enabled: true",
        f"  host: {u.hostname}",
        f"  port: {u.port}",
        f"  user: {urllib.parse.unquote(u.username or '')}",
        f"  password: {urllib.parse.unquote(u.password or '')}",
        f"  dbname: {u.path.lstrip('/') or 'postgres'}",
        "  sslmode: disable",
    ]


def _registry2_config(s3):
    """registry:2 2.8's s3 (s3-aws) driver: with `regionendpoint` set it uses path-style addressing and
    accepts any region name (it has no `forcepathstyle` key); plain HTTP needs `secure: false`."""
    return [
        "version: 0.1",
        "http:",
        "  addr: 127.0.0.1:{port}",
        "  headers:",
        "    X-Content-Type-Options: [nosniff]",
        "storage:",
        "  s3:",
        f"    accesskey: {s3['ACCESS_KEY']}",
        f"    secretkey: {s3['SECRET_KEY']}",
        f"    region: {s3['REGION']}",
        f"    regionendpoint: {s3['ENDPOINT']}",
        f"    bucket: {s3['BUCKET']}",
        "    rootdirectory: /registry2",
        "    secure: false",
        "    v4auth: true",
        "  redirect:",
        "    disable: true",
        "  delete:",
        "    enabled: true",
        "  cache:",
        "    blobdescriptor: inmemory",
        "log:",
        "  fields:",
        "    service: registry",
    ]


class Target:
    def __init__(self, key, label, proc):
        self.key, self.label, self.proc = key, label, proc

    @property
    def url(self):
        return self.proc.url


def run(o, work, ps, engines, meta):
    log = o.log
    s3 = engines.garage()
    pg = engines.postgres()
    meta["s3"] = {"engine": "Garage (scripts/garage.sh)", "endpoint": s3["ENDPOINT"], "bucket": s3["BUCKET"]}
    meta["database"] = "PostgreSQL (scripts/postgres.sh), berth only"
    berth = start_server(ps, work, "berth", [os.path.abspath(o.berth), "serve"], _berth_config(s3, pg))
    targets = [Target("berth", "berth", berth)]
    if not o.skip_registry2:
        r2 = start_server(ps, work, "registry2", ["docker-registry", "serve"], _registry2_config(s3))
        targets.append(Target("registry2", "registry:2", r2))
    res = {}

    def add(row, key, v):
        res.setdefault(row, {}).setdefault(key, []).append(v)

    base = os.path.join(work, "random.bin")
    log(f"writing {o.blob_size >> 20} MiB of random data")
    with open(base, "wb") as f:
        left = o.blob_size
        while left:
            n = min(left, 4 << 20)
            f.write(os.urandom(n))
            left -= n
    prefix = client.prefix_hash(base, o.blob_size - 16)

    garage_pid = engines.garage_pid()

    def cpu():
        now = {x.key: procs.cpu_seconds(x.proc.pid) for x in targets}
        now["garage"] = procs.cpu_seconds(garage_pid)
        return now

    def cpu_delta(before, secs):
        """Cores each process used during a transfer (the registries and Garage share the 2 cores)."""
        after = cpu()
        return {k: round((after[k] - before[k]) / secs, 2) for k in after}

    for rep in range(o.reps):
        log(f"repetition {rep + 1} of {o.reps}")
        for t in targets:
            blob = client.Blob(base, o.blob_size, prefix, f"s3:{rep}".encode().ljust(16, b".")[:16])
            os.sync()
            cpu0 = cpu()
            secs = client.push_monolithic(t.url, "bench/big", blob)
            add("push", t.key, o.blob_size / secs / 1e6)
            add("push_cpu", t.key, cpu_delta(cpu0, secs))
            log(f"  {t.label}: push {o.blob_size / secs / 1e6:.0f} MB/s, CPU {cpu_delta(cpu0, secs)}")
            path = f"/v2/bench/big/blobs/{blob.digest}"
            if rep == 0:
                got = client.pull_digest(t.url, path, o.blob_size)
                if got != blob.digest:
                    raise RuntimeError(f"{t.label} served {got} for {blob.digest}")
            cpu0 = cpu()
            secs = client.pull(t.url, path, o.blob_size)
            add("pull", t.key, o.blob_size / secs / 1e6)
            add("pull_cpu", t.key, cpu_delta(cpu0, secs))
            log(f"  {t.label}: pull {o.blob_size / secs / 1e6:.0f} MB/s, CPU {cpu_delta(cpu0, secs)}")

    counts, seed_rates = {}, {}
    for t in targets:
        counts[t.key], seed_rates[t.key] = seed(o, t)
        log(f"  {t.label}: {counts[t.key]} repositories at {seed_rates[t.key]:.0f}/s")
        lat = catalog_latencies(t, counts[t.key], samples=100 if t.key == "berth" else 10, budget=120)
        for v in lat:
            add("catalog", t.key, v)
        log(f"  {t.label}: catalog page p50 {median(lat):.1f} ms over {len(lat)} requests")
    for t in targets:
        if not t.proc.alive():
            raise RuntimeError(f"{t.label} died during the run:\n{t.proc.log_tail()}")
    meta["repositories"] = counts
    meta["seed_rate_per_s"] = seed_rates
    return rows(o, res, counts, seed_rates)


def seed(o, t):
    """Up to `repo_count` repositories, each with the two shared blobs mounted and one small manifest,
    within `seed_seconds`. Returns (repositories made, per second)."""
    conn = client.Conn(t.url)
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = os.urandom(1024)
    try:
        cdig = client.push_small_blob(conn, SEED_REPO, cfg)
        ldig = client.push_small_blob(conn, SEED_REPO, layer)
        shared = client.manifest_bytes(cdig, len(cfg), ldig, len(layer))
        client.put_manifest(conn, SEED_REPO, "latest", shared)
    finally:
        conn.close()
    deadline = time.monotonic() + o.seed_seconds
    done = [0]
    lock = threading.Lock()

    def one(c, i):
        name = f"cat/r{i:05d}"
        client.mount(c, name, cdig, SEED_REPO)
        client.mount(c, name, ldig, SEED_REPO)
        client.put_manifest(c, name, "latest", shared)
        with lock:
            done[0] += 1

    o.log(f"{t.label}: seeding up to {o.repo_count} repositories (at most {o.seed_seconds:.0f} s)")
    items = (i for i in range(o.repo_count - 1) if time.monotonic() < deadline)
    secs = client.run_parallel(t.url, items, o.seed_clients, one)
    return done[0] + 1, done[0] / secs


def catalog_latencies(t, count, samples, budget):
    """The first page of 100 of the catalog, asked for again and again on one keep-alive connection
    (up to `samples` times or `budget` seconds): milliseconds per page. Checks that every page is full,
    and that berth's catalog holds every repository seeded (once, untimed, by walking it)."""
    conn = client.Conn(t.url, timeout=600)
    try:
        total, last = 0, None
        # registry:2 on S3 takes seconds per page of 100 and minutes for the whole walk: it is trusted
        # with the 201s of its seeding.
        while t.key == "berth":
            q = "/v2/_catalog?n=1000" + (f"&last={urllib.parse.quote(last)}" if last else "")
            _, data = conn.expect((200,), "GET", q)
            page = json.loads(data).get("repositories") or []
            total += len(page)
            if len(page) < 1000:
                break
            last = page[-1]
        if t.key == "berth" and total < count:
            raise RuntimeError(f"{t.label}: catalog lists {total} repositories, {count} were made")
        out = []
        deadline = time.monotonic() + budget
        while len(out) < samples and (not out or time.monotonic() < deadline):
            t0 = time.monotonic()
            _, data = conn.expect((200,), "GET", "/v2/_catalog?n=100")
            out.append((time.monotonic() - t0) * 1000)
            got = len(json.loads(data).get("repositories") or [])
            if got != 100:
                raise RuntimeError(f"{t.label}: a catalog page of {got} entries, not 100")
        return out
    finally:
        conn.close()


def _p99(values):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))] if s else None


def rows(o, res, counts, seed_rates):
    out = []
    size = f"{o.blob_size >> 20} MiB"
    for row, name in (("push", f"push, monolithic, {size}"), ("pull", f"pull, {size}")):
        runs = res.get(row, {})
        value = {k: median(v) for k, v in runs.items()}
        b, r = value.get("berth"), value.get("registry2")
        ratio = f"{b / r:.2f}x registry:2" if b and r else None
        cpu = res.get(row + "_cpu", {})
        notes = "; ".join(
            f"during {k}'s: " + ", ".join(f"{p} {median([c[p] for c in v]):.2f}" for p in v[0]) + " cores"
            for k, v in cpu.items()
        )
        out.append(
            dict(name=name, unit="MB/s", columns=runs, value=value, ratio=ratio, goal=">= 1.0x registry:2",
                 met=(b >= r) if b and r else None, digits=0, notes=notes, cpu=cpu)
        )
    cat = res.get("catalog", {})
    value = {k: median(v) for k, v in cat.items()}
    b, r = value.get("berth"), value.get("registry2")
    notes = "; ".join(
        f"{k}: {counts[k]:,} repositories (seeded at {seed_rates[k]:.0f}/s), p99 {_p99(cat[k]):.1f} ms, "
        f"{len(cat[k])} requests" for k in cat
    )
    out.append(
        dict(name="catalog page, n=100", unit="ms, p50", columns=cat, value=value,
             ratio=f"{r / b:.0f}x faster" if b and r else None, goal="under 20 ms",
             met=(b < 20) if b is not None else None, digits=1, notes=notes)
    )
    return out
