"""The garbage-collection suite's registry, generated directly into the stores (not pushed one by one):
the same logical data written as berth's filesystem layout + SQLite, as berth's S3 keys + PostgreSQL
rows, and as registry:2's filesystem tree.

The shape (`Shape(scale=1.0)`, issue 18's numbers):
- R = 10,000 repositories `gc/rNNNNN`, each with one image config blob and P = 9 private layers, and
  S = 10,000 layers shared across repositories: 100,000 layer blobs, 10,000 configs;
- M = 5 OCI image manifests per repository (50,000): manifest j of repository r has the repository's
  config, the shared layer (r + 2003 j) mod S and the private layers 2j, 2j+1 (mod P), so every blob is
  referenced and every shared layer is used by several repositories;
- tags `v0`..`v4` and `latest` (-> v0), except that in every tenth repository manifest 4 is untagged
  (1,000 untagged manifests: what `--delete-untagged` would delete, with their private layer 8);
- the garbage: G = 1,000 blobs linked to a repository that no manifest references, touched 30 days ago
  (an abandoned push): what a sweep frees. `add_garbage_*` writes them again, so the cached registry
  can be swept for real and restored.

Every row is dated 30 days back, so no grace period protects anything and a sweep examines everything.
Blob bytes are 1-4 KiB of SHAKE-128 output from the blob's name (deterministic, so a digest is
computed once per run and the stores agree); manifests are real JSON whose digests are of their bytes.
"""

import concurrent.futures
import csv
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import threading
import time

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DAY = 86400
#: Bump when the generated data changes, so a cached copy is rebuilt.
VERSION = 1


class Shape:
    """The sizes of the registry; `scale` multiplies repositories, layers and garbage alike."""

    def __init__(self, scale=1.0):
        self.repos = max(10, int(10000 * scale))
        self.shared = max(10, int(10000 * scale))
        self.private = 9
        self.per_repo = 5
        self.garbage = max(10, int(1000 * scale))
        self.scale = scale
        self.now = int(time.time())
        self.dated = self.now - 30 * DAY

    @property
    def layers(self):
        return self.shared + self.repos * self.private

    @property
    def manifests(self):
        return self.repos * self.per_repo

    def key(self):
        return f"v{VERSION}-r{self.repos}-s{self.shared}-g{self.garbage}"

    def describe(self):
        return {
            "repositories": self.repos,
            "layer_blobs": self.layers,
            "config_blobs": self.repos,
            "manifests": self.manifests,
            "untagged_manifests": self.repos // 10,
            "tags": self.repos * (self.per_repo + 1) - self.repos // 10,
            "garbage_blobs": self.garbage,
        }

    @staticmethod
    def repo_name(r):
        return f"gc/r{r:05d}"


def _bytes(name, size):
    return hashlib.shake_128(name.encode()).digest(size)


def _size(i):
    return 1024 + (i * 2654435761) % 3073


class Blob:
    __slots__ = ("hex", "name", "size")

    def __init__(self, name, size):
        self.name, self.size = name, size
        self.hex = hashlib.sha256(self.data()).hexdigest()

    def data(self):
        if self.name.startswith("config-"):
            r = int(self.name.split("-")[1])
            return _config_json(r)
        return _bytes(self.name, self.size)

    @property
    def digest(self):
        return "sha256:" + self.hex


def _config_json(r):
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"org.example.bench.repository": Shape.repo_name(r)}},
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


class Manifest:
    __slots__ = ("blobs", "hex", "index", "payload", "repo", "tags")

    def __init__(self, repo, index, config, layers, tags):
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": OCI_LAYER, "digest": b.digest, "size": b.size} for b in layers],
        }
        self.repo, self.index = repo, index
        self.payload = json.dumps(doc, separators=(",", ":")).encode()
        self.hex = hashlib.sha256(self.payload).hexdigest()
        self.blobs = [config, *layers]
        self.tags = tags

    @property
    def digest(self):
        return "sha256:" + self.hex


class Dataset:
    """Every blob's digest and size and every manifest, in memory (digests, not bytes: ~60 MB at full
    scale); bytes are made again from the blob's name when written."""

    def __init__(self, shape):
        self.shape = s = shape
        self.shared = [Blob(f"shared-{i}", _size(i)) for i in range(s.shared)]
        self.private = [
            [Blob(f"private-{r}-{k}", _size(s.shared + r * s.private + k)) for k in range(s.private)]
            for r in range(s.repos)
        ]
        self.configs = []
        for r in range(s.repos):
            data = _config_json(r)
            self.configs.append(Blob(f"config-{r}", len(data)))
        self.garbage = [Blob(f"garbage-{g}", _size(7 * g + 3)) for g in range(s.garbage)]
        self.manifests = []
        for r in range(s.repos):
            for j in range(s.per_repo):
                layers = [
                    self.shared[(r + 2003 * j) % s.shared],
                    self.private[r][(2 * j) % s.private],
                    self.private[r][(2 * j + 1) % s.private],
                ]
                untagged = j == s.per_repo - 1 and r % 10 == 0
                tags = [] if untagged else [f"v{j}"] + (["latest"] if j == 0 else [])
                self.manifests.append(Manifest(r, j, self.configs[r], layers, tags))

    def blobs(self):
        """Every referenced blob once (configs, shared and private layers), without the garbage."""
        yield from self.configs
        yield from self.shared
        for p in self.private:
            yield from p

    def repo_links(self):
        """(repository index, blob) for every blob a repository may read, each pair once, garbage apart."""
        for r in range(self.shape.repos):
            seen = set()
            for m in self.manifests[r * self.shape.per_repo : (r + 1) * self.shape.per_repo]:
                for b in m.blobs:
                    if b.hex not in seen:
                        seen.add(b.hex)
                        yield r, b

    def garbage_links(self):
        for g, b in enumerate(self.garbage):
            yield g % self.shape.repos, b


# ---- berth: the filesystem blob store and SQLite ----


def _write_fs_blob(root, b):
    d = os.path.join(root, "blobs", "sha256", b.hex[:2])
    path = os.path.join(d, b.hex)
    if os.path.exists(path):
        return
    os.makedirs(d, exist_ok=True)
    tmp = path + ".gen"
    with open(tmp, "wb") as f:
        f.write(b.data())
    os.rename(tmp, path)


def write_berth_fs(ds, root, log):
    """Blob bytes under `root/blobs/sha256/xx/<hex>` and the rows in `root/metadata.sqlite`, whose schema
    berth made (the caller runs berth once on the empty directory first)."""
    for n, b in enumerate(ds.blobs(), 1):
        _write_fs_blob(root, b)
        if n % 20000 == 0:
            log(f"  berth fs: {n} blobs written")
    db = sqlite3.connect(os.path.join(root, "metadata.sqlite"))
    try:
        _fill_sqlite(ds, db)
    finally:
        db.close()
    add_garbage_fs(ds, root)


def _fill_sqlite(ds, db):
    s = ds.shape
    t = s.dated
    cur = db.cursor()
    cur.execute("BEGIN")
    cur.executemany(
        "INSERT INTO repositories (id, name) VALUES (?, ?)",
        ((r + 1, s.repo_name(r)) for r in range(s.repos)),
    )
    cur.executemany(
        "INSERT INTO blobs (digest, size, touched_at) VALUES (?, ?, ?)",
        ((b.digest, b.size, t) for b in ds.blobs()),
    )
    cur.executemany(
        "INSERT INTO repository_blobs (repo_id, digest, linked_at) VALUES (?, ?, ?)",
        ((r + 1, b.digest, t) for r, b in ds.repo_links()),
    )
    cur.executemany(
        "INSERT INTO manifests (repo_id, digest, media_type, payload, size, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        ((m.repo + 1, m.digest, OCI_MANIFEST, m.payload, len(m.payload), t) for m in ds.manifests),
    )
    cur.executemany(
        "INSERT INTO manifest_blobs (repo_id, manifest_digest, blob_digest) VALUES (?, ?, ?)",
        ((m.repo + 1, m.digest, b.digest) for m in ds.manifests for b in m.blobs),
    )
    cur.executemany(
        "INSERT INTO tags (repo_id, name, manifest_digest, updated_at) VALUES (?, ?, ?, ?)",
        ((m.repo + 1, tag, m.digest, t) for m in ds.manifests for tag in m.tags),
    )
    cur.execute("COMMIT")


def add_garbage_fs(ds, root):
    """The garbage blobs (bytes, row, link), again if a sweep took them; idempotent."""
    for b in ds.garbage:
        _write_fs_blob(root, b)
    db = sqlite3.connect(os.path.join(root, "metadata.sqlite"))
    try:
        t = ds.shape.dated
        cur = db.cursor()
        cur.execute("BEGIN")
        cur.executemany(
            "INSERT INTO blobs (digest, size, touched_at) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING",
            ((b.digest, b.size, t) for b in ds.garbage),
        )
        cur.executemany(
            "INSERT INTO repository_blobs (repo_id, digest, linked_at) VALUES (?, ?, ?)"
            " ON CONFLICT (repo_id, digest) DO NOTHING",
            ((r + 1, b.digest, t) for r, b in ds.garbage_links()),
        )
        cur.execute("COMMIT")
    finally:
        db.close()


# ---- berth: S3 (Garage) and PostgreSQL ----


def _copy(psql_url, table, columns, rows):
    """`COPY table (columns) FROM STDIN` in CSV through psql, streaming `rows`."""
    proc = subprocess.Popen(
        [
            "psql",
            psql_url,
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)",
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for row in rows:
        w.writerow(row)
        if buf.tell() > 1 << 20:
            proc.stdin.write(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
    proc.stdin.write(buf.getvalue().encode())
    proc.stdin.close()
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise RuntimeError(f"COPY {table}: {err.decode()[-2000:]}")


def psql(psql_url, sql):
    out = subprocess.run(
        ["psql", psql_url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"psql {sql[:80]}: {out.stderr[-2000:]}")
    return out.stdout


def write_postgres(ds, url, log):
    s = ds.shape
    t = s.dated
    _copy(url, "repositories", "id, name", ((r + 1, s.repo_name(r)) for r in range(s.repos)))
    psql(
        url, "SELECT setval(pg_get_serial_sequence('repositories', 'id'), (SELECT max(id) FROM repositories))"
    )
    _copy(
        url, "blobs", "digest, size, touched_at", ((b.digest, b.size, t) for b in [*ds.blobs(), *ds.garbage])
    )
    _copy(
        url,
        "repository_blobs",
        "repo_id, digest, linked_at",
        ((r + 1, b.digest, t) for r, b in [*ds.repo_links(), *ds.garbage_links()]),
    )
    _copy(
        url,
        "manifests",
        "repo_id, digest, media_type, payload, size, created_at",
        (
            (m.repo + 1, m.digest, OCI_MANIFEST, "\\x" + m.payload.hex(), len(m.payload), t)
            for m in ds.manifests
        ),
    )
    _copy(
        url,
        "manifest_blobs",
        "repo_id, manifest_digest, blob_digest",
        ((m.repo + 1, m.digest, b.digest) for m in ds.manifests for b in m.blobs),
    )
    _copy(
        url,
        "tags",
        "repo_id, name, manifest_digest, updated_at",
        ((m.repo + 1, tag, m.digest, t) for m in ds.manifests for tag in m.tags),
    )
    # A live database is analysed by autovacuum soon after such a load; a bulk load has not been yet.
    psql(url, "VACUUM ANALYZE")
    log("  PostgreSQL: rows copied, VACUUM ANALYZE done")


def s3_client(env):
    import boto3  # PyPI's boto3: only this suite needs it
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=env["ENDPOINT"],
        region_name=env["REGION"],
        aws_access_key_id=env["ACCESS_KEY"],
        aws_secret_access_key=env["SECRET_KEY"],
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=32, retries={"max_attempts": 5}),
    )


def write_s3(ds, env, prefix, log, workers=24, garbage_only=False):
    """Every blob (and the garbage) as `<prefix>/blobs/sha256/xx/<hex>`, PUT by `workers` threads."""
    s3 = s3_client(env)
    bucket = env["BUCKET"]
    items = list(ds.garbage) if garbage_only else [*ds.blobs(), *ds.garbage]
    done = [0]
    lock = threading.Lock()

    def put(b):
        s3.put_object(Bucket=bucket, Key=f"{prefix}/blobs/sha256/{b.hex[:2]}/{b.hex}", Body=b.data())
        with lock:
            done[0] += 1
            if done[0] % 20000 == 0:
                log(f"  Garage: {done[0]} of {len(items)} blobs PUT")

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for f in concurrent.futures.as_completed([pool.submit(put, b) for b in items]):
            f.result()
    return len(items) / max(time.monotonic() - t0, 1e-9)


def add_garbage_postgres(ds, url):
    t = ds.shape.dated
    values = ",".join(f"('{b.digest}', {b.size}, {t})" for b in ds.garbage)
    psql(url, f"INSERT INTO blobs (digest, size, touched_at) VALUES {values} ON CONFLICT (digest) DO NOTHING")
    links = ",".join(f"({r + 1}, '{b.digest}', {t})" for r, b in ds.garbage_links())
    psql(
        url,
        f"INSERT INTO repository_blobs (repo_id, digest, linked_at) VALUES {links}"
        " ON CONFLICT (repo_id, digest) DO NOTHING",
    )


# ---- registry:2's filesystem tree ----


def _link(path, digest):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(digest)


def _write_r2_blob(v2, hex_, data):
    d = os.path.join(v2, "blobs", "sha256", hex_[:2], hex_)
    path = os.path.join(d, "data")
    if os.path.exists(path):
        return
    os.makedirs(d, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def write_registry2(ds, root, log):
    """registry:2's tree under `root/docker/registry/v2` (distribution's registry/storage/paths.go):
    blobs/sha256/xx/<hex>/data for every blob and manifest; per repository _layers links, manifest
    revision links, and tags (current/link and index/sha256/<hex>/link)."""
    v2 = os.path.join(root, "docker", "registry", "v2")
    for n, b in enumerate([*ds.blobs(), *ds.garbage], 1):
        _write_r2_blob(v2, b.hex, b.data())
        if n % 20000 == 0:
            log(f"  registry:2: {n} blobs written")
    for m in ds.manifests:
        _write_r2_blob(v2, m.hex, m.payload)
    for r, b in [*ds.repo_links(), *ds.garbage_links()]:
        _link(
            os.path.join(v2, "repositories", ds.shape.repo_name(r), "_layers", "sha256", b.hex, "link"),
            b.digest,
        )
    for i, m in enumerate(ds.manifests):
        base = os.path.join(v2, "repositories", ds.shape.repo_name(m.repo), "_manifests")
        _link(os.path.join(base, "revisions", "sha256", m.hex, "link"), m.digest)
        for tag in m.tags:
            _link(os.path.join(base, "tags", tag, "current", "link"), m.digest)
            _link(os.path.join(base, "tags", tag, "index", "sha256", m.hex, "link"), m.digest)
        if (i + 1) % 10000 == 0:
            log(f"  registry:2: {i + 1} manifests linked")
