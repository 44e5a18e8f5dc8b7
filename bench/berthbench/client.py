"""The benchmark's HTTP client for the registry API: pushes that send the blob with sendfile(2), pulls that
read into one reused buffer, and the small calls that seed manifests, tags and repositories.

Why not curl for pushes and pulls: the client shares the 2 cores with the server it measures, so it must
cost as little as possible and the same for every server. sendfile moves the blob from the page cache to
the socket without copying it through Python, and a pull costs one recv into a 1 MiB buffer per MiB. The
same code pulls from nginx, so the ratio to the limit compares servers, not clients.

A pushed blob is `base[:size-16] + suffix`: each repetition gets a 16-byte suffix of its own, so every
push is of a blob the registry has never seen (no dedup short-cut), without writing a new 1 GiB file; the
digest is finished from a hash state saved once over the shared prefix.
"""

import hashlib
import http.client
import json
import threading
import time
import urllib.parse

PULL_BUFFER = 1 << 20


class Blob:
    """A blob to push: the first `size - len(suffix)` bytes of the file `base`, then `suffix`."""

    def __init__(self, base_path, size, prefix_hash, suffix):
        self.base_path = base_path
        self.size = size
        self.suffix = suffix
        h = prefix_hash.copy()
        h.update(suffix)
        self.digest = "sha256:" + h.hexdigest()

    @property
    def prefix_len(self):
        return self.size - len(self.suffix)

    def send_range(self, sock, f, start, end):
        """Sends bytes [start, end) of the blob: the file part by sendfile, the suffix by send."""
        if start < self.prefix_len:
            n = min(end, self.prefix_len) - start
            sent = sock.sendfile(f, start, n)
            if sent != n:
                raise OSError(f"sendfile sent {sent} of {n} bytes")
        if end > self.prefix_len:
            lo = max(start, self.prefix_len) - self.prefix_len
            sock.sendall(self.suffix[lo : end - self.prefix_len])


def prefix_hash(path, length):
    """The SHA-256 state after the first `length` bytes of `path` (computed once per run)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = length
        while left:
            chunk = f.read(min(left, 1 << 22))
            if not chunk:
                raise OSError(f"{path} is shorter than {length} bytes")
            h.update(chunk)
            left -= len(chunk)
    return h


class Conn:
    """One keep-alive HTTP/1.1 connection to a server at `base` (http://127.0.0.1:PORT)."""

    def __init__(self, base, timeout=300):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def close(self):
        self.conn.close()

    def request(self, method, path, body=None, headers=None):
        """A small request; returns (status, headers as a dict of lower-case names, body bytes)."""
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        self.conn.request(method, path, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def expect(self, want, method, path, body=None, headers=None):
        status, hdrs, data = self.request(method, path, body, headers)
        if status not in want:
            raise RuntimeError(f"{method} {path}: {status} (want {want}): {data[:300]!r}")
        return hdrs, data

    def send_blob_range(self, method, path, blob, f, start, end, extra_headers=None):
        """A request whose body is bytes [start, end) of `blob`, sent with sendfile."""
        self.conn.putrequest(method, path, skip_accept_encoding=True)
        self.conn.putheader("Content-Type", "application/octet-stream")
        self.conn.putheader("Content-Length", str(end - start))
        for k, v in (extra_headers or {}).items():
            self.conn.putheader(k, v)
        self.conn.endheaders()
        blob.send_range(self.conn.sock, f, start, end)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def _location_path(location, previous):
    """The path+query of an upload Location (absolute or relative, as the spec allows)."""
    u = urllib.parse.urlsplit(urllib.parse.urljoin(previous, location))
    return u.path + ("?" + u.query if u.query else "")


def _with_digest(path, digest):
    sep = "&" if "?" in path else "?"
    return f"{path}{sep}digest={urllib.parse.quote(digest)}"


def start_upload(conn, repo):
    hdrs, _ = conn.expect((202,), "POST", f"/v2/{repo}/blobs/uploads/", body=b"")
    return _location_path(hdrs["location"], f"/v2/{repo}/blobs/uploads/")


def push_monolithic(base, repo, blob):
    """POST a session, then one PUT with the whole blob. Returns the seconds from POST to 201."""
    conn = Conn(base)
    try:
        with open(blob.base_path, "rb") as f:
            t0 = time.monotonic()
            loc = start_upload(conn, repo)
            status, _, data = conn.send_blob_range(
                "PUT", _with_digest(loc, blob.digest), blob, f, 0, blob.size
            )
            elapsed = time.monotonic() - t0
        if status != 201:
            raise RuntimeError(f"monolithic PUT: {status}: {data[:300]!r}")
        return elapsed
    finally:
        conn.close()


def push_chunked(base, repo, blob, chunk):
    """POST a session, PATCH `chunk` bytes at a time (Content-Range), then PUT ?digest= with no body."""
    conn = Conn(base)
    try:
        with open(blob.base_path, "rb") as f:
            t0 = time.monotonic()
            loc = start_upload(conn, repo)
            off = 0
            while off < blob.size:
                end = min(off + chunk, blob.size)
                status, hdrs, data = conn.send_blob_range(
                    "PATCH", loc, blob, f, off, end, {"Content-Range": f"{off}-{end - 1}"}
                )
                if status != 202:
                    raise RuntimeError(f"PATCH {off}-{end - 1}: {status}: {data[:300]!r}")
                loc = _location_path(hdrs["location"], loc)
                off = end
            conn.expect((201,), "PUT", _with_digest(loc, blob.digest), body=b"")
            return time.monotonic() - t0
    finally:
        conn.close()


def pull(base, path, expect_size, buf=None):
    """GETs `path` and reads the body into a reused buffer. Returns seconds to the last byte."""
    buf = buf if buf is not None else bytearray(PULL_BUFFER)
    view = memoryview(buf)
    conn = Conn(base)
    try:
        t0 = time.monotonic()
        conn.conn.request("GET", path)
        resp = conn.conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status}: {resp.read()[:300]!r}")
        got = 0
        while True:
            n = resp.readinto(view)
            if not n:
                break
            got += n
        elapsed = time.monotonic() - t0
        if got != expect_size:
            raise RuntimeError(f"GET {path}: {got} bytes, expected {expect_size}")
        return elapsed
    finally:
        conn.close()


def pull_digest(base, path, expect_size):
    """GETs `path` and hashes the body (untimed: checks once that a server returns the right bytes)."""
    conn = Conn(base)
    try:
        conn.conn.request("GET", path)
        resp = conn.conn.getresponse()
        h, got = hashlib.sha256(), 0
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
        if resp.status != 200 or got != expect_size:
            raise RuntimeError(f"GET {path}: status {resp.status}, {got} bytes")
        return "sha256:" + h.hexdigest()
    finally:
        conn.close()


def pull_parallel(base, path, expect_size, clients):
    """`clients` pulls of `path` at once (threads released by a barrier). Returns (wall seconds from the
    barrier to the last byte of the last pull, per-pull seconds)."""
    barrier = threading.Barrier(clients + 1)
    times = [None] * clients
    errors = []

    def one(i):
        buf = bytearray(PULL_BUFFER)
        try:
            barrier.wait()
            times[i] = pull(base, path, expect_size, buf)
        except Exception as e:  # noqa: BLE001 - reported to the caller below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    if errors:
        raise errors[0]
    return wall, times


def push_small_blob(conn, repo, data):
    """A small blob in two requests (POST, PUT ?digest= with the body); returns its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = start_upload(conn, repo)
    conn.expect(
        (201,),
        "PUT",
        _with_digest(loc, digest),
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    return digest


def mount(conn, repo, digest, source):
    path = f"/v2/{repo}/blobs/uploads/?mount={urllib.parse.quote(digest)}&from={urllib.parse.quote(source)}"
    conn.expect((201,), "POST", path, body=b"")


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def manifest_bytes(config_digest, config_size, layer_digest, layer_size, note=None):
    """A small OCI image manifest; `note` (an annotation) makes each of many manifests distinct."""
    m = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer_size}],
    }
    if note is not None:
        m["annotations"] = {"org.example.bench": note}
    return json.dumps(m, separators=(",", ":")).encode()


def put_manifest(conn, repo, ref, data):
    conn.expect(
        (201,), "PUT", f"/v2/{repo}/manifests/{ref}", body=data, headers={"Content-Type": OCI_MANIFEST}
    )


def run_parallel(base, items, clients, fn):
    """Calls fn(conn, item) for every item, on `clients` keep-alive connections. Returns seconds taken."""
    lock = threading.Lock()
    it = iter(items)
    errors = []

    def worker():
        conn = Conn(base)
        try:
            while not errors:
                with lock:
                    item = next(it, None)
                if item is None:
                    return
                fn(conn, item)
        except Exception as e:  # noqa: BLE001 - reported to the caller below
            errors.append(e)
        finally:
            conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.monotonic() - t0
