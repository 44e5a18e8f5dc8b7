"""`--suite gc` (issue 18's benchmark): `berth garbage-collect` over a registry of 10,000 repositories,
100,000 layer blobs and 50,000 manifests generated directly into the stores (`gcdata.py`), on the
filesystem + SQLite and on Garage + PostgreSQL, beside registry:2's `garbage-collect --dry-run` on the
same data in its own tree; peak memory; push and pull p99 with and without a sweep running.

The registry is generated once into a cache (`--cache`, default ~/.cache/berth/bench-gc; berth's fs +
SQLite copy and registry:2's tree) and reused: a run sweeps the garbage it holds (1,000 unreferenced
blobs) and `gcdata.add_garbage_fs` puts it back the next time. Garage + PostgreSQL are throwaway
servers of the run, so that side is generated in every run.

Order, per backend: a dry run (what would go: the garbage), a real run (frees it), then `--reps` real
runs and dry runs with nothing to free (the goal's figure), and a `--delete-untagged` dry run; each
timed as a whole process (start, open the stores, sweep, exit) with its peak RSS from wait4's rusage.
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time

from . import client, gcdata, procs
from .suites import median

REPO = "gc/r00001"


def _berth_fs_config(root, port=None):
    return [
        "version: 0.1",
        "http:",
        f"  addr: 127.0.0.1:{port or 5000}",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root}",
        "  delete:",
        "    enabled: true",
        "gc:",
        "  enabled: false",
        "log:",
        "  level: warn",
    ]


def _write(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def timed(argv, timeout, out_path=None):
    """Runs argv to its end: (wall seconds, peak RSS MB, CPU seconds, the output's last 4,000 characters).

    Through GNU time (`%M`: the command's own peak RSS). Not wait4's rusage of a child forked from this
    driver: the kernel carries the forked copy's peak (this driver's ~100 MB of digests) over exec."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf, tempfile.TemporaryFile() as tmp:
        out = open(out_path, "wb") if out_path else tmp  # noqa: SIM115 - closed below, or tmp's
        try:
            t0 = time.monotonic()
            p = subprocess.Popen(
                ["/usr/bin/time", "-o", tf.name, "-f", "%M %U %S", *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=procs.clean_env(),
            )
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise RuntimeError(f"{' '.join(argv[:3])} took more than {timeout} s") from None
            wall = time.monotonic() - t0
        finally:
            if out_path:
                out.close()
        if out_path:
            with open(out_path, "rb") as f:
                f.seek(max(0, os.path.getsize(out_path) - 4000))
                text = f.read().decode(errors="replace")
        else:
            tmp.seek(0)
            text = tmp.read()[-4000:].decode(errors="replace")
        fields = tf.read().split()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {text[-1500:]}")
    kib, user, system = fields[-3:]
    return wall, int(kib) / 1024, float(user) + float(system), text


def summary(text):
    lines = [ln for ln in text.splitlines() if "garbage collection" in ln]
    return lines[-1].strip() if lines else text.strip().splitlines()[-1:]


class Backend:
    """One berth configuration under test: its config file and how its garbage is put back."""

    def __init__(self, label, config, restore):
        self.label, self.config, self.restore = label, config, restore


def prepare_fs(o, ds, cache, log):
    """berth's fs + SQLite copy of the registry in the cache (made when missing), garbage restored."""
    d = os.path.join(cache, ds.shape.key(), "berth")
    root = os.path.join(d, "data")
    cfg = os.path.join(d, "config.yml")
    done = os.path.join(d, "complete")
    if not os.path.exists(done):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(root)
        _write(cfg, _berth_fs_config(root))
        # berth makes its schema (and its directories) when it opens the stores: a dry run on the empty
        # directory, then the rows go in with sqlite3.
        timed([o.berth, "garbage-collect", cfg, "--dry-run"], 120)
        t0 = time.monotonic()
        gcdata.write_berth_fs(ds, root, log)
        log(f"  berth fs + SQLite generated in {time.monotonic() - t0:.0f} s")
        open(done, "w").close()
    else:
        gcdata.add_garbage_fs(ds, root)
    return root, cfg


def prepare_registry2(ds, cache, log):
    d = os.path.join(cache, ds.shape.key(), "registry2")
    done = os.path.join(d, "complete")
    if not os.path.exists(done):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        t0 = time.monotonic()
        gcdata.write_registry2(ds, d, log)
        log(f"  registry:2 tree generated in {time.monotonic() - t0:.0f} s")
        open(done, "w").close()
    cfg = _write(
        os.path.join(cache, ds.shape.key(), "registry2.yml"),
        [
            "version: 0.1",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {d}",
            "  delete:",
            "    enabled: true",
            "log:",
            "  level: warn",
        ],
    )
    return cfg


def gc_runs(o, backend, log):
    """The sweeps of one backend; returns {figure: [runs]} and notes (summary lines)."""
    b = o.berth
    res, notes = {}, {}

    def run(key, *args, timeout=1800):
        wall, rss, cpu, text = timed([b, "garbage-collect", backend.config, *args], timeout)
        res.setdefault(key, []).append(wall)
        res.setdefault(key + "_rss", []).append(rss)
        res.setdefault(key + "_cpu", []).append(cpu)
        notes[key] = summary(text)
        log(f"  {backend.label} {key}: {wall:.2f} s, peak RSS {rss:.1f} MB, CPU {cpu:.2f} s: {notes[key]}")

    run("dry_garbage", "--dry-run")
    run("real_garbage")
    for _ in range(o.reps):
        run("real_nothing")
        run("dry_nothing", "--dry-run")
    run("dry_untagged", "--dry-run", "--delete-untagged")
    return res, notes


def latency_windows(o, url, backend, log):
    """Push (POST + PUT of a new 4 KiB blob) and pull (GET of a 1-4 KiB layer) latencies, one client
    each, in windows of `--load-seconds` alternately without and with `berth garbage-collect` (real,
    the configuration's grace of 1 h, nothing to free) running back to back, and, as a control, with a
    process that only spins on one core (a sweep keeps about one of the two cores busy: this tells the
    cost of any busy process from the sweep's own). {"push": {"quiet": [ms], "gc": [ms], "busy": [ms]},
    "pull": ...} and how many sweeps ran."""
    layer = gcdata.Blob("private-1-0", gcdata._size(o.shape.shared + 1 * o.shape.private + 0))
    path = f"/v2/{REPO}/blobs/{layer.digest}"
    lat = {op: {"quiet": [], "gc": [], "busy": []} for op in ("push", "pull")}
    sweeps = [0]
    counter = [0]
    tag = os.urandom(4).hex()

    def pusher(phase, stop):
        conn = client.Conn(url, timeout=60)
        try:
            while not stop.is_set():
                counter[0] += 1
                data = f"gc-bench push {tag} {counter[0]}\n".encode().ljust(4096, b".")
                t0 = time.monotonic()
                client.push_small_blob(conn, REPO, data)
                lat["push"][phase].append((time.monotonic() - t0) * 1000)
        finally:
            conn.close()

    def puller(phase, stop):
        conn = client.Conn(url, timeout=60)
        try:
            while not stop.is_set():
                t0 = time.monotonic()
                _, data = conn.expect((200,), "GET", path)
                lat["pull"][phase].append((time.monotonic() - t0) * 1000)
                if len(data) != layer.size:
                    raise RuntimeError(f"pull of {layer.digest}: {len(data)} bytes")
        finally:
            conn.close()

    def collector(stop):
        while not stop.is_set():
            timed([o.berth, "garbage-collect", backend.config], 1800)
            sweeps[0] += 1

    def spinner(stop):
        spin = subprocess.Popen(["python3", "-c", "while True: pass"], env=procs.clean_env())
        stop.wait()
        spin.kill()
        spin.wait()

    for w in range(3 * o.windows):
        phase = ("quiet", "gc", "busy")[w % 3]
        stop = threading.Event()
        threads = [threading.Thread(target=f, args=(phase, stop)) for f in (pusher, puller)]
        if phase == "gc":
            threads.append(threading.Thread(target=collector, args=(stop,)))
        if phase == "busy":
            threads.append(threading.Thread(target=spinner, args=(stop,)))
        for t in threads:
            t.start()
        time.sleep(o.load_seconds)
        stop.set()
        for t in threads:
            t.join()
        log(
            f"  {backend.label} window {w + 1} ({phase}): {len(lat['push'][phase])} pushes,"
            f" {len(lat['pull'][phase])} pulls so far"
        )
    return lat, sweeps[0]


def p99(values):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(0.99 * len(s)))]


def serve_and_measure(o, ps, work, backend, cfg_lines_with_port, key, log):
    proc_dir = os.path.join(work, key)
    os.makedirs(proc_dir, exist_ok=True)
    port = procs.free_port()
    cfg = _write(
        os.path.join(proc_dir, "serve.yml"), [ln.replace("{port}", str(port)) for ln in cfg_lines_with_port]
    )
    proc = ps.start(
        key,
        [o.berth, "serve", cfg],
        os.path.join(proc_dir, "server.log"),
        f"http://127.0.0.1:{port}",
        env=procs.clean_env({"HOME": proc_dir}),
        cwd=proc_dir,
    )
    try:
        procs.wait_http(proc, "/v2/", timeout=60)
        return latency_windows(o, proc.url, backend, log)
    finally:
        ps.stop(proc)


def run(o, work, ps, engines, meta):
    log = o.log
    shape = gcdata.Shape(o.scale)
    o.shape = shape
    meta["dataset"] = shape.describe()
    log(f"computing the dataset's digests ({shape.key()})")
    ds = gcdata.Dataset(shape)
    results = {}

    # fs + SQLite
    log("berth fs + SQLite: preparing the cached registry")
    root, cfg = prepare_fs(o, ds, o.cache, log)
    fs = Backend("fs+SQLite", cfg, lambda: gcdata.add_garbage_fs(ds, root))
    results["fs"] = gc_runs(o, fs, log)
    if o.windows:
        lines = _berth_fs_config(root, "{port}")
        results["fs_latency"] = serve_and_measure(o, ps, work, fs, lines, "berth-fs", log)
        # The pushes of the windows are unreferenced blobs: swept now, so the cache holds nothing to free.
        timed([o.berth, "garbage-collect", cfg, "--grace", "0"], 600)

    # The same at a tenth of the size: memory that does not grow with the registry.
    if o.scale >= 1.0 and not o.skip_small:
        small = gcdata.Dataset(gcdata.Shape(o.scale / 10))
        log(f"berth fs + SQLite at a tenth of the size ({small.shape.key()})")
        _, scfg = prepare_fs(o, small, o.cache, log)
        res, _ = gc_runs(o, Backend("fs+SQLite (1/10)", scfg, None), log)
        results["fs_small"] = res
        meta["dataset_small"] = small.shape.describe()

    # registry:2 on its own tree of the same data
    if not o.skip_registry2:
        log("registry:2: preparing its tree")
        r2cfg = prepare_registry2(ds, o.cache, log)
        log("registry:2 garbage-collect --dry-run")
        try:
            wall, rss, cpu, text = timed(
                ["docker-registry", "garbage-collect", "--dry-run", r2cfg],
                o.registry2_timeout,
                out_path=os.path.join(work, "registry2-gc.log"),
            )
            results["registry2"] = {
                "wall": wall,
                "rss": rss,
                "cpu": cpu,
                "tail": text.strip().splitlines()[-2:],
            }
            log(f"  registry:2 dry run: {wall:.1f} s, peak RSS {rss:.1f} MB, CPU {cpu:.1f} s")
        except RuntimeError as e:
            results["registry2"] = {"error": str(e)}
            log(f"  registry:2: {e}")

    # Garage + PostgreSQL
    if not o.skip_s3:
        results["s3"] = run_s3(o, work, ps, engines, ds, meta, log)
    return rows(o, results, meta)


def run_s3(o, work, ps, engines, ds, meta, log):
    from .s3suite import _berth_config

    s3 = engines.garage()
    pg = engines.postgres()
    meta["s3"] = {"engine": "Garage (scripts/garage.sh)", "bucket": s3["BUCKET"]}
    lines = _berth_config(s3, pg) + ["gc:", "  enabled: false", "log:", "  level: warn"]
    d = os.path.join(work, "berth-s3")
    os.makedirs(d)
    cfg = _write(os.path.join(d, "config.yml"), [ln.replace("{port}", "5000") for ln in lines])
    timed([o.berth, "garbage-collect", cfg, "--dry-run"], 300)
    t0 = time.monotonic()
    gcdata.write_postgres(ds, pg, log)
    pg_s = time.monotonic() - t0
    log(f"  PostgreSQL loaded in {pg_s:.0f} s; PUTting the blobs into Garage")
    t0 = time.monotonic()
    rate = gcdata.write_s3(ds, s3, "berth", log)
    s3_s = time.monotonic() - t0
    log(f"  Garage: {rate:.0f} PUT/s, {s3_s:.0f} s")
    meta["s3_generation"] = {"postgres_s": pg_s, "garage_s": s3_s, "garage_put_per_s": rate}
    backend = Backend("Garage+PostgreSQL", cfg, None)
    res = gc_runs(o, backend, log)
    lat = None
    if o.windows:
        lat = serve_and_measure(o, ps, work, backend, lines, "berth-s3", log)
    return res, lat


def _ratio(a, b):
    return a / b if a and b else None


def rows(o, results, meta):
    out = []
    fs, fs_notes = results["fs"]
    s3res = results.get("s3")
    s3, s3_notes = s3res[0] if s3res else ({}, {})
    r2 = results.get("registry2") or {}
    cols = ("berth fs+SQLite", "berth Garage+PostgreSQL", "registry:2 fs")

    def row(name, unit, key, goal=None, met=None, notes="", r2v=None, digits=2):
        columns = {cols[0]: fs.get(key, []), cols[1]: s3.get(key, [])}
        if r2v is not None:
            columns[cols[2]] = [r2v]
        value = {c: median(v) for c, v in columns.items() if v}
        out.append(
            {
                "name": name,
                "unit": unit,
                "columns": columns,
                "value": value,
                "goal": goal,
                "met": met,
                "notes": notes,
                "digits": digits,
            }
        )
        return value

    fs_nothing = median(fs.get("real_nothing", []))
    s3_nothing = median(s3.get("real_nothing", [])) if s3 else None
    met = fs_nothing is not None and fs_nothing < 10 and (s3_nothing is None or s3_nothing < 60)
    row(
        "full GC, nothing to free",
        "s",
        "real_nothing",
        goal="< 10 s fs+SQLite, < 60 s Garage+PostgreSQL",
        met=met if s3 or o.skip_s3 else None,
        notes=f"fs: {fs_notes.get('real_nothing')}; S3: {s3_notes.get('real_nothing', '—')}",
    )
    row("dry run, nothing to free", "s", "dry_nothing")
    row(
        f"dry run, {o.shape.garbage:,} blobs to free",
        "s",
        "dry_garbage",
        r2v=r2.get("wall"),
        notes="registry:2: `garbage-collect --dry-run` on its tree of the same data"
        + (f" ({r2['error']})" if r2.get("error") else ""),
    )
    row(
        f"real run, freeing {o.shape.garbage:,} blobs",
        "s",
        "real_garbage",
        notes=f"fs: {fs_notes.get('real_garbage')}",
    )
    row(
        "dry run with --delete-untagged",
        "s",
        "dry_untagged",
        notes=f"fs: {fs_notes.get('dry_untagged')}",
    )
    small = results.get("fs_small")
    rss = median(fs.get("real_nothing_rss", []))
    small_rss = median(small.get("real_nothing_rss", [])) if small else None
    row(
        "peak RSS, GC with nothing to free",
        "MB",
        "real_nothing_rss",
        goal="bounded: not growing with the registry",
        met=(rss < 2 * small_rss + 10) if small_rss else None,
        notes=(
            f"the same at a tenth of the size (fs+SQLite): {small_rss:.1f} MB, {median(small['real_nothing']):.2f} s"
            if small_rss
            else ""
        ),
        digits=1,
    )
    row(
        f"peak RSS, dry run with {o.shape.garbage:,} to free",
        "MB",
        "dry_garbage_rss",
        r2v=r2.get("rss"),
        digits=1,
    )
    row("CPU, GC with nothing to free", "s", "real_nothing_cpu")

    def lat_rows(lat_fs, lat_s3):
        for op in ("push", "pull"):
            have = [(c, lat) for c, lat in ((cols[0], lat_fs), (cols[1], lat_s3)) if lat]
            if not have:
                continue
            quiet = {c: [p99(lat[0][op]["quiet"])] for c, lat in have}
            during = {c: [p99(lat[0][op]["gc"])] for c, lat in have}
            ratios = {c: during[c][0] / quiet[c][0] for c, _ in have}
            counts = "; ".join(
                f"{c.split(' ', 1)[1]}: {len(lat[0][op]['quiet'])} requests without, {len(lat[0][op]['gc'])} during"
                f" {lat[1]} sweeps"
                for c, lat in have
            )
            out.append(
                {
                    "name": f"{op} p99 without GC",
                    "unit": "ms",
                    "columns": quiet,
                    "value": {c: v[0] for c, v in quiet.items()},
                    "notes": counts,
                    "digits": 2,
                }
            )
            busy = {c: [p99(lat[0][op]["busy"])] for c, lat in have}
            out.append(
                {
                    "name": f"{op} p99 beside a process spinning on one core (control)",
                    "unit": "ms",
                    "columns": busy,
                    "value": {c: v[0] for c, v in busy.items()},
                    "ratio": ", ".join(
                        f"{c.split(' ', 1)[1]} {busy[c][0] / quiet[c][0]:.2f}x" for c, _ in have
                    ),
                    "notes": "; ".join(
                        f"{c.split(' ', 1)[1]}: {len(lat[0][op]['busy'])} requests" for c, lat in have
                    ),
                    "digits": 2,
                }
            )
            out.append(
                {
                    "name": f"{op} p99 during GC",
                    "unit": "ms",
                    "columns": during,
                    "value": {c: v[0] for c, v in during.items()},
                    "ratio": ", ".join(f"{c.split(' ', 1)[1]} {r:.2f}x" for c, r in ratios.items()),
                    "goal": "<= 1.2x without",
                    "met": max(ratios.values()) <= 1.2,
                    "digits": 2,
                }
            )

    lat_rows(results.get("fs_latency"), s3res[1] if s3res else None)
    meta["gc_summaries"] = {"fs": fs_notes, "s3": s3_notes, "registry2": r2.get("tail")}
    return out
