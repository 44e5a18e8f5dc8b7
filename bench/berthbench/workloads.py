"""The workloads, each run against every registry in turn and against its machine limit, repetition after
repetition (berth, registry:2, [baseline], limit; then again), so that the machine's drift falls on all
of them alike. A `Results` collects every measurement; the report takes medians.

Every workload checks what it got (status codes, byte counts, and once per server the digest of a pulled
blob): a benchmark that measures fast failures is worse than none.
"""

import json
import os
import shutil

from . import client, image, machine, procs, servers, wrk

HOT_REPO = "bench/hot"
TAGS_REPO = "bench/tags"
BIG_REPO = "bench/big"

# skopeo pulls per repetition and registry (one push each: a second would find every blob there).
SKOPEO_PULLS_PER_REP = 3


def _rotated(items, turn):
    """`items` starting at position `turn` (mod their count), so that no one of them always goes first."""
    k = turn % len(items)
    return items[k:] + items[:k]


def _skopeo_ref(url, repo):
    """skopeo's name for `repo:v1` on the server at `url` (http://127.0.0.1:PORT)."""
    return f"docker://{url.split('://')[1]}/{repo}:v1"


class Results:
    """Measurements by row id and column ("berth", "registry2", "baseline", "limit"): lists of runs,
    each a number or a dict with a "value" and details (p50, p99, CPU)."""

    def __init__(self):
        self.rows = {}

    def add(self, row, column, value):
        self.rows.setdefault(row, {}).setdefault(column, []).append(value)


def _seeders(cdig, csize, ldig, lsize):
    """The two seeding steps for one registry: a tag with a manifest of its own, and a repository
    (both blobs mounted from the tags repository, then one shared manifest)."""
    shared = client.manifest_bytes(cdig, csize, ldig, lsize)

    def tag(conn, i):
        client.put_manifest(
            conn, TAGS_REPO, f"t{i:05d}", client.manifest_bytes(cdig, csize, ldig, lsize, note=str(i))
        )

    def repo(conn, i):
        name = f"cat/r{i:05d}"
        client.mount(conn, name, cdig, TAGS_REPO)
        client.mount(conn, name, ldig, TAGS_REPO)
        client.put_manifest(conn, name, "latest", shared)

    return tag, repo


class Bench:
    """One run: the servers, the data, the sizes, and where results go."""

    def __init__(self, opts, work, procs_, targets, nginx_docroot):
        self.o = opts
        self.work = work
        self.procs = procs_
        self.targets = targets
        self.docroot = nginx_docroot
        self.nginx = None
        self.results = Results()
        self.base = os.path.join(work, "random.bin")
        self.prefix = None
        self.hot = {}
        self.pull_blob = None
        self.log = opts.log

    # ---- data ----

    def make_data(self):
        """One file of random bytes, the size of the big blob; every pushed blob is cut from it."""
        self.log(f"writing {self.o.blob_size >> 20} MiB of random data")
        with open(self.base, "wb") as f:
            left = self.o.blob_size
            while left:
                n = min(left, 4 << 20)
                f.write(os.urandom(n))
                left -= n
        self.prefix = client.prefix_hash(self.base, self.o.blob_size - 16)

    def blob(self, rep, kind):
        suffix = f"{kind}:{rep}".encode().ljust(16, b".")[:16]
        return client.Blob(self.base, self.o.blob_size, self.prefix, suffix)

    # ---- seeding ----

    def seed_hot(self):
        """The small manifest and layer the request-rate workloads ask for, pushed to every registry."""
        cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
        layer = os.urandom(1024)
        for t in self.targets:
            conn = client.Conn(t.url)
            try:
                cdig = client.push_small_blob(conn, HOT_REPO, cfg)
                ldig = client.push_small_blob(conn, HOT_REPO, layer)
                hot = client.manifest_bytes(cdig, len(cfg), ldig, len(layer))
                client.put_manifest(conn, HOT_REPO, "latest", hot)
            finally:
                conn.close()
        self.hot = {"config": cdig, "layer": ldig, "manifest": hot}
        with open(os.path.join(self.docroot, "small"), "wb") as f:
            f.write(hot)

    def seed_discovery(self, targets):
        """`seed_count` tags in one repository and as many repositories, through the API. The manifests
        are small and share two blobs (mounted into each new repository), so seeding is quick."""
        n = self.o.seed_count
        cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
        layer = os.urandom(1024)
        for t in targets:
            conn = client.Conn(t.url)
            try:
                cdig = client.push_small_blob(conn, TAGS_REPO, cfg)
                ldig = client.push_small_blob(conn, TAGS_REPO, layer)
            finally:
                conn.close()
            tag, repo = _seeders(cdig, len(cfg), ldig, len(layer))
            self.log(f"{t.label}: seeding {n} tags and {n} repositories")
            secs = client.run_parallel(t.url, range(n), self.o.seed_clients, tag)
            self.results.add("seed_tags", t.key, n / secs)
            secs = client.run_parallel(t.url, range(n), self.o.seed_clients, repo)
            self.results.add("seed_repos", t.key, n / secs)

    # ---- pushes ----

    def push(self, rep, chunked):
        row = "push_chunked" if chunked else "push_mono"
        for t in self.targets:
            blob = self.blob(rep, "chunked" if chunked else "mono")
            os.sync()
            before = procs.status_kib(t.proc.pid, "VmRSS") or 0
            with procs.RssSampler([t.proc.pid]) as rss:
                if chunked:
                    secs = client.push_chunked(t.url, BIG_REPO, blob, self.o.chunk_size)
                else:
                    secs = client.push_monolithic(t.url, BIG_REPO, blob)
            os.sync()  # registry:2 does not fsync: its dirty pages must not land in the next one's turn
            peak = rss.peak_kib[t.proc.pid]
            self.results.add(row, t.key, {"value": blob.size / secs / 1e6, "rss_mb": peak * 1024 / 1e6})
            # What the push itself adds: memory kept from earlier workloads (allocator arenas) is not its.
            self.results.add("rss_push", t.key, max(peak - before, 0) * 1024 / 1e6)
            if not chunked and self.pull_blob is None:
                self.pull_blob = blob
            self.log(f"  {row} {t.label}: {blob.size / secs / 1e6:.0f} MB/s")
        if not chunked:
            self.results.add("limit_sha256", "limit", machine.sha256_mbps(self.base, self.o.blob_size))
            scratch = os.path.join(self.work, "dd.out")
            self.results.add(
                "limit_disk", "limit", machine.durable_write_mbps(self.base, self.o.blob_size, scratch)
            )
            self.results.add("limit_read", "limit", machine.page_cache_read_mbps(self.base, self.o.blob_size))

    # ---- pulls ----

    def prepare_pulls(self):
        """Checks once per server that the pulled blob comes back byte-exact, and gives nginx the file
        berth stored (a hard link: the same inode, so the same page-cache pages)."""
        b = self.pull_blob
        path = f"/v2/{BIG_REPO}/blobs/{b.digest}"
        for t in self.targets:
            got = client.pull_digest(t.url, path, b.size)
            if got != b.digest:
                raise RuntimeError(f"{t.label} returned {got} for {b.digest}")
        src = servers.find_blob_file(self.targets[0].root, b.digest)
        dst = os.path.join(self.docroot, "big")
        if src is not None:
            os.link(src, dst)
        else:
            # Unknown layout: the same bytes in a file of nginx's own.
            with open(dst, "wb") as out, open(self.base, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
                out.seek(b.prefix_len)
                out.write(b.suffix)
        os.chmod(dst, 0o644)
        if client.pull_digest(self.nginx.url, "/big", b.size) != b.digest:
            raise RuntimeError("nginx serves different bytes than the registries")

    def pulls(self, rep, clients):
        """Each server in turn, the first of them a different one each repetition: the pulls follow the
        pushes, whose writeback (registry:2 does not fsync) would otherwise always slow the same server."""
        row = "pull_1" if clients == 1 else f"pull_{clients}"
        b = self.pull_blob
        ends = [(t.key, t.url, f"/v2/{BIG_REPO}/blobs/{b.digest}") for t in self.targets]
        ends.append(("limit", self.nginx.url, "/big"))
        os.sync()
        for key, url, path in _rotated(ends, rep):
            wall, _ = client.pull_parallel(url, path, b.size, clients)
            self.results.add(row, key, clients * b.size / wall / 1e6)

    def rss_under_pulls(self, clients):
        """Resident memory of each server while `clients` pull the big blob at once (sampled every 10 ms)."""
        b = self.pull_blob
        for t in self.targets:
            with procs.RssSampler([t.proc.pid]) as rss:
                wall, _ = client.pull_parallel(t.url, f"/v2/{BIG_REPO}/blobs/{b.digest}", b.size, clients)
            self.results.add("rss_pull16", t.key, rss.peak_kib[t.proc.pid] * 1024 / 1e6)
            self.results.add("pull_16", t.key, clients * b.size / wall / 1e6)

    # ---- request rates ----

    def rates(self):
        """GET through wrk, HEAD through bench-loadgen (wrk cannot do HEAD), each against every registry
        and then against nginx with the same tool; nginx's GET is also measured with bench-loadgen, so
        the report shows how the two tools compare."""
        accept = {"Accept": client.OCI_MANIFEST}
        lg = self.o.loadgen
        cases = [
            ("manifest_get", "GET", f"/v2/{HOT_REPO}/manifests/latest", accept, None),
            ("manifest_head", "HEAD", f"/v2/{HOT_REPO}/manifests/latest", accept, lg),
            ("blob_head", "HEAD", f"/v2/{HOT_REPO}/blobs/{self.hot['layer']}", {}, lg),
        ]
        for row, method, path, headers, tool in cases:
            for t in self.targets:
                r = self._rate(t.url + path, method, headers, t.proc.pid, False, tool)
                self.results.add(row, t.key, dict(r, value=r["rps"]))
        for row, method, tool in (
            ("limit_small", "GET", None),
            ("limit_small_head", "HEAD", lg),
            ("limit_small_lg", "GET", lg),
        ):
            r = self._rate(self.nginx.url + "/small", method, {}, self.nginx.pid, True, tool)
            self.results.add(row, "limit", dict(r, value=r["rps"]))

    def _rate(self, url, method, headers, pid, tree, tool):
        return wrk.run(
            self.work, url, method, headers, self.o.connections, 2, self.o.wrk_seconds, pid, tree, tool
        )

    def pages(self, targets):
        """One client asking for the first page of 100 again and again: the latency of a page."""
        cases = [
            ("tags_page", f"/v2/{TAGS_REPO}/tags/list?n=100"),
            ("catalog_page", "/v2/_catalog?n=100"),
        ]
        for row, path in cases:
            for t in targets:
                entries = self.page_entries(t, path)
                r = wrk.run(self.work, t.url + path, "GET", {}, 1, 1, self.o.wrk_seconds, t.proc.pid)
                self.results.add(row, t.key, dict(r, value=r["p50_ms"], entries=entries))

    def page_entries(self, t, path):
        """How many entries a page holds. berth must honour n=100; registry:2 2.8 ignores `n` on the tags
        list and answers with every tag, which the report says rather than hides."""
        conn = client.Conn(t.url)
        try:
            _, data = conn.expect((200,), "GET", path)
        finally:
            conn.close()
        doc = json.loads(data)
        items = doc.get("tags") if "tags" in doc else doc.get("repositories")
        count = len(items or [])
        if count < 100 or (t.key != "registry2" and count != 100):
            raise RuntimeError(f"{t.label} {path}: {count} entries, expected a page of 100")
        return count

    # ---- skopeo ----

    def skopeo(self, rep):
        layout = os.path.join(self.work, f"image-{rep}")
        total = image.build(layout, rep, self.base, self.o.layer_sizes)
        home = os.path.join(self.work, "skopeo-home")
        os.makedirs(home, exist_ok=True)
        regconf = os.path.join(home, "registries.conf")
        with open(regconf, "w") as f:
            f.write("# empty: no mirrors or search registries from /etc reach the benchmark\n")
        env = procs.clean_env(
            {
                "HOME": home,
                "XDG_CONFIG_HOME": home,
                "XDG_DATA_HOME": home,
                "XDG_RUNTIME_DIR": home,
                "TMPDIR": home,
                "CONTAINERS_REGISTRIES_CONF": regconf,
                "REGISTRY_AUTH_FILE": os.path.join(home, "auth.json"),
            }
        )
        try:
            repo = f"bench/skopeo-{rep}"
            ends = [(t.key, _skopeo_ref(t.url, repo), t.proc.pid, False) for t in self.targets]
            for key, ref, pid, _ in ends:
                os.sync()
                args = ["copy", "--dest-tls-verify=false", f"oci:{layout}:v1", ref]
                self.results.add("skopeo_push", key, self._skopeo_timed(pid, False, args, env))
            static = self._serve_statically(self.targets[0], repo)
            ends.append(("limit", _skopeo_ref(self.nginx.url, repo), self.nginx.pid, True))
            # Pulls change nothing, so each repetition makes several, the servers in turn (a different one
            # first each round): skopeo's own CPU is most of a pull's time, and it varies run to run.
            for i in range(SKOPEO_PULLS_PER_REP):
                for key, ref, pid, tree in _rotated(ends, rep * SKOPEO_PULLS_PER_REP + i):
                    out = os.path.join(self.work, f"pulled-{key}-{rep}-{i}")
                    os.sync()
                    args = ["copy", "--src-tls-verify=false", ref, f"oci:{out}:v1"]
                    self.results.add("skopeo_pull", key, self._skopeo_timed(pid, tree, args, env))
                    shutil.rmtree(out)
            shutil.rmtree(static)
            self.log(f"  skopeo copy of {len(self.o.layer_sizes)} layers, {total / 1e6:.0f} MB: done")
        finally:
            shutil.rmtree(layout, ignore_errors=True)

    def _serve_statically(self, target, repo):
        """Lays the image `target` holds as `repo:v1` out in nginx's root as the files a registry would
        answer with (the manifest, and each blob hard-linked from `target`'s storage): a skopeo pull from
        nginx is the least time a pull of that image can take, skopeo's own work with no registry logic.
        Returns the tree to remove afterwards."""
        conn = client.Conn(target.url)
        try:
            accept = {"Accept": client.OCI_MANIFEST}
            hdrs, data = conn.expect((200,), "GET", f"/v2/{repo}/manifests/v1", headers=accept)
        finally:
            conn.close()
        if hdrs.get("content-type") != client.OCI_MANIFEST:
            raise RuntimeError(f"{target.label} answered {repo}:v1 with {hdrs.get('content-type')}")
        manifest = json.loads(data)
        top = os.path.join(self.docroot, "v2")
        here = os.path.join(top, repo)
        for sub in ("manifests", "blobs"):
            os.makedirs(os.path.join(here, sub), mode=0o755)
        with open(os.path.join(here, "manifests", "v1"), "wb") as f:
            f.write(data)
        for desc in [manifest["config"], *manifest["layers"]]:
            src = servers.find_blob_file(target.root, desc["digest"])
            if src is None:
                raise RuntimeError(f"no file for {desc['digest']} under {target.root}")
            os.link(src, os.path.join(here, "blobs", desc["digest"]))
        # nginx may run as nobody: every directory searchable, every file readable.
        for dirpath, _, filenames in os.walk(top):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)
        return top

    def _skopeo_timed(self, pid, tree, args, env):
        """One `skopeo --insecure-policy ARGS` against the server `pid` (and its children if `tree`): its wall
        time, with the CPU the server and skopeo spent on it (mostly skopeo's own hashing and writing)."""
        cpu0 = procs.cpu_seconds(pid, tree)
        wall, skopeo_cpu, _ = procs.run_timed(["skopeo", "--insecure-policy", *args], env=env, timeout=600)
        return {"value": wall, "server_cpu": procs.cpu_seconds(pid, tree) - cpu0, "client_cpu": skopeo_cpu}

    # ---- memory ----

    def idle_rss(self):
        for t in self.targets:
            self.results.add("rss_idle", t.key, procs.status_kib(t.proc.pid, "VmRSS") * 1024 / 1e6)

    def peak_rss(self, targets, row="rss_peak"):
        for t in targets:
            self.results.add(row, t.key, procs.status_kib(t.proc.pid, "VmHWM") * 1024 / 1e6)
