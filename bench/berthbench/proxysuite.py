"""`--suite proxy`: the pull-through cache (issue 4) against the pulls it stands in for.

An upstream berth (filesystem) holds a multi-layer image (8 uncompressed layers, about 300 MB; built on
the spot with image.py); a plain berth holds the same image pushed to it. Each repetition starts a fresh
mirror (`proxy.remoteurl` = the upstream, an empty cache) and times four `skopeo copy ... dir:` pulls, in
turn:

- direct: from the upstream itself,
- cold: through the mirror, which fetches every blob from the upstream while it streams it (and stores it),
- warm: through the same mirror again (everything cached; the tag is within `proxy.revalidate`),
- local: from the plain berth, where the image was pushed.

The ratios of the medians are the issue's goals: cold/direct at most 1.1x, warm/local about 1.0x. skopeo
writes to a directory on tmpfs when there is room (it is the client, not the thing measured), and every
pulled directory is checked (its manifest digest) and removed.
"""

import hashlib
import os
import shutil

from . import client, image, machine, procs
from .suites import median, start_server

IMAGE = "bench/app:v1"


def _config(extra=()):
    return [
        "version: 0.1",
        "http:",
        "  addr: 127.0.0.1:{port}",
        "storage:",
        "  filesystem:",
        "    rootdirectory: ./data",
        "  delete:",
        "    enabled: true",
        *extra,
    ]


def _scratch(work):
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
        if st.f_bavail * st.f_frsize > 4 << 30 and os.access(shm, os.W_OK):
            return shm
    except OSError:
        pass
    return work


class Skopeo:
    """skopeo with a home of its own (no user configuration, no blob-info cache shared with other runs)."""

    def __init__(self, work):
        self.home = os.path.join(work, "skopeo-home")
        os.makedirs(self.home)
        self.env = procs.clean_env({"HOME": self.home, "TMPDIR": self.home})

    def copy(self, src, dest):
        """`skopeo copy SRC DEST` (plain HTTP to the registries); returns (wall, CPU) seconds."""
        argv = ["skopeo", "copy", "--retry-times", "0"]
        if src.startswith("docker://"):
            argv.append("--src-tls-verify=false")
        if dest.startswith("docker://"):
            argv.append("--dest-tls-verify=false")
        wall, cpu, _ = procs.run_timed(argv + [src, dest], env=self.env, timeout=900)
        return wall, cpu


def _host(proc):
    return proc.url.split("://", 1)[1]


def run(o, work, ps, meta):
    log = o.log
    berth = [os.path.abspath(o.berth), "serve"]
    upstream = start_server(ps, work, "upstream", berth, _config())
    local = start_server(ps, work, "local", berth, _config())
    sk = Skopeo(work)

    data = os.path.join(work, "random.bin")
    with open(data, "wb") as f:
        left = max(o.layer_sizes)
        while left:
            n = min(left, 4 << 20)
            f.write(os.urandom(n))
            left -= n
    layout = os.path.join(work, "layout")
    total = image.build(layout, 0, data, o.layer_sizes)
    meta["image"] = {"layers": len(o.layer_sizes), "bytes": total}
    log(f"pushing a {len(o.layer_sizes)}-layer image ({total / 1e6:.0f} MB) to upstream and local")
    for p in (upstream, local):
        sk.copy(f"oci:{layout}:v1", f"docker://{_host(p)}/{IMAGE}")
    # skopeo may rewrite the manifest on the way in: the digest to expect is the one the registries hold.
    digests = {_manifest_digest(p) for p in (upstream, local)}
    if len(digests) != 1:
        raise RuntimeError(f"the upstream and the local berth hold different manifests: {digests}")
    want = digests.pop()

    scratch = _scratch(work)
    if o.baseline:
        meta.setdefault("notes", []).append(f"Baseline mirror: {o.baseline}.")
    res, fetches, cpus, durable = {}, {}, {}, []
    for rep in range(o.reps):
        log(f"repetition {rep + 1} of {o.reps}")
        mirror = start_server(ps, work, f"mirror{rep}", berth,
                              _config(["proxy:", f"  remoteurl: {upstream.url}"]))
        pulls = [("direct", upstream), ("cold", mirror), ("warm", mirror), ("local", local)]
        if o.baseline:
            # The baseline build as a mirror of its own, its cold pull beside this one's: before it in
            # every other repetition, so that neither always comes first.
            base = start_server(ps, work, f"baseline{rep}", [os.path.abspath(o.baseline), "serve"],
                                _config(["proxy:", f"  remoteurl: {upstream.url}"]))
            pulls.insert(1 if rep % 2 else 2, ("cold baseline", base))
        for key, proc in pulls:
            dest = os.path.join(scratch, f"berth-bench-pull-{os.getpid()}-{key}")
            shutil.rmtree(dest, ignore_errors=True)
            mark = _log_size(upstream)
            servers = (("upstream", upstream), ("mirror", proc if key == "cold baseline" else mirror))
            cpu0 = {n: procs.cpu_seconds(p.pid) for n, p in servers}
            try:
                wall, cpu = sk.copy(f"docker://{_host(proc)}/{IMAGE}", f"dir:{dest}")
                with open(os.path.join(dest, "manifest.json"), "rb") as f:
                    got = "sha256:" + hashlib.sha256(f.read()).hexdigest()
                if got != want:
                    raise RuntimeError(f"{key} pull: manifest {got}, pushed {want}")
            finally:
                shutil.rmtree(dest, ignore_errors=True)
            res.setdefault(key, []).append(wall)
            for n, p in servers:
                cpus.setdefault(f"{key}: {n}", []).append(procs.cpu_seconds(p.pid) - cpu0[n])
            calls = _upstream_requests(upstream, mark)
            fetches.setdefault(key, []).append(calls)
            log(f"  {key}: {wall:.2f} s ({total / wall / 1e6:.0f} MB/s), skopeo CPU {cpu:.2f} s, "
                f"upstream requests {calls}")
        ps.stop(mirror)
        shutil.rmtree(os.path.join(work, f"mirror{rep}"), ignore_errors=True)
        if o.baseline:
            ps.stop(base)
            shutil.rmtree(os.path.join(work, f"baseline{rep}"), ignore_errors=True)
        # The cache's floor: the mirror makes what it fetches durable as it goes (see the README).
        mbps = machine.durable_write_mbps(data, os.path.getsize(data), os.path.join(work, "durable.tmp"))
        durable.append(mbps)
        log(f"  durable write (dd conv=fdatasync): {mbps:.0f} MB/s")
    for p in (upstream, local):
        if not p.alive():
            raise RuntimeError(f"{p.name} died during the run:\n{p.log_tail()}")
    meta["scratch_fs"] = machine.fs_type(scratch)
    meta["upstream_requests"] = fetches
    meta["server_cpu_s"] = cpus
    return rows(res, total, fetches, cpus, durable)


def _manifest_digest(proc):
    conn = client.Conn(proc.url)
    try:
        repo, tag = IMAGE.split(":")
        hdrs, _ = conn.expect(
            (200,), "HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": client.OCI_MANIFEST}
        )
        return hdrs["docker-content-digest"]
    finally:
        conn.close()


def _log_size(proc):
    try:
        return os.path.getsize(proc.log_path)
    except OSError:
        return 0


def _upstream_requests(upstream, mark):
    """The requests the upstream logged since `mark` (its log's size before a pull), by route: berth logs
    a line per request (`route=blob`, `route=manifest`, ...). A pull straight from the upstream counts
    too: it is the yardstick (what one pull costs the upstream)."""
    counts = {}
    with open(upstream.log_path, "rb") as f:
        f.seek(mark)
        for line in f.read().decode(errors="replace").splitlines():
            if " route=" in line and " method=" in line:
                method = line.split(" method=", 1)[1].split()[0]
                route = line.split(" route=", 1)[1].split()[0]
                k = f"{method} {route}"
                counts[k] = counts.get(k, 0) + 1
    return counts


def rows(res, total, fetches, cpus, durable):
    value = {k: median(v) for k, v in res.items()}
    out = [
        dict(name=f"skopeo copy to dir:, {total / 1e6:.0f} MB image", unit="s", columns=res, value=value,
             digits=2, notes="; ".join(f"{k}: {', '.join(f'{x:.2f}' for x in v)}" for k, v in res.items())),
        dict(name="requests the upstream saw during the pull, last repetition", unit="count", columns={},
             value={k: sum(v[-1].values()) for k, v in fetches.items()}, digits=0,
             notes="; ".join(f"{k}: {v[-1] or 'none'}" for k, v in fetches.items())),
        dict(name="CPU of the upstream and the mirror during each pull, median", unit="s", columns={},
             value={}, notes="; ".join(f"{k} {median(v):.2f}" for k, v in cpus.items() if median(v) > 0.005)),
    ]
    if durable:
        mbps = median(durable)
        out.append(dict(name="durable write of the image's bytes at the disk's speed (dd conv=fdatasync)",
                        unit="s", columns={}, value={"cold": total / mbps / 1e6}, digits=2,
                        notes=f"{mbps:.0f} MB/s (runs: {', '.join(f'{x:.0f}' for x in durable)}): "
                        "a cold pull stores every byte durably, so it cannot take less"))
    d, c, w, lo = (value.get(k) for k in ("direct", "cold", "warm", "local"))
    if d and c:
        out.append(dict(name="cold through the mirror / direct from the upstream", unit="ratio",
                        columns={}, value={}, ratio=f"{c / d:.2f}x", goal="<= 1.1x", met=c / d <= 1.1))
    b = value.get("cold baseline")
    if d and b:
        out.append(dict(name="cold through the baseline's mirror / direct", unit="ratio", columns={}, value={},
                        ratio=f"{b / d:.2f}x", goal="<= 1.1x", met=b / d <= 1.1,
                        notes="per repetition, cold / direct: berth "
                        + ", ".join(f"{c / x:.2f}" for c, x in zip(res["cold"], res["direct"]))
                        + "; baseline " + ", ".join(f"{c / x:.2f}" for c, x in zip(res["cold baseline"], res["direct"]))))
    if w and lo:
        out.append(dict(name="warm through the mirror / local", unit="ratio", columns={}, value={},
                        ratio=f"{w / lo:.2f}x", goal="about 1.0x (<= 1.05x)", met=w / lo <= 1.05))
    return out
