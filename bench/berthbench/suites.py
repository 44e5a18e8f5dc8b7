"""The benchmark's other suites (`--suite s3`, `--suite proxy`, `--suite gc`): their options, the
servers they share, and their report.

Why apart from main.py: the default suite compares berth with registry:2 and the machine's limits on
the filesystem; these suites answer narrower questions (berth on Garage and PostgreSQL beside registry:2's
S3 driver; the pull-through cache beside direct and local pulls) with servers of their own. They reuse
the default suite's building blocks (processes that die with the driver, the HTTP client, the OCI layout
builder) and keep its rules: every process started is stopped in `finally`, repetitions alternate the
registries, medians are reported, and the load average at start and end is recorded.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from . import machine, procs

MiB = 1 << 20
SUITES = ("default", "s3", "proxy", "gc")


def split_suite(argv):
    """(suite, the other arguments): `--suite NAME` or `--suite=NAME`, `default` when absent."""
    rest, suite, i = [], "default", 0
    while i < len(argv):
        a = argv[i]
        if a == "--suite" and i + 1 < len(argv):
            suite, i = argv[i + 1], i + 2
            continue
        if a.startswith("--suite="):
            suite = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    return suite, rest


def parse(suite, argv):
    p = argparse.ArgumentParser(
        prog=f"bench/run.sh --suite {suite}",
        description="berth on S3 + PostgreSQL beside registry:2 on S3 (s3), the pull-through cache"
        " (proxy), or garbage collection of a generated registry (gc). See bench/README.md.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes and 2 repetitions")
    p.add_argument("--reps", type=int, help="repetitions (default: s3 3, proxy 5; quick 2)")
    p.add_argument("--berth", required=True, help="the berth binary to measure")
    p.add_argument("--baseline", help="proxy: another berth binary, a mirror of its own beside each cold pull")
    p.add_argument("--loadgen", help="(unused by these suites; run.sh passes it)")
    p.add_argument("--out", default=None, help="results directory (default bench/results)")
    p.add_argument("--workdir", default="/var/tmp", help="where the temporary directories go (a disk)")
    p.add_argument("--repo", default=os.getcwd(), help="the berth repository (for the commit recorded)")
    p.add_argument("--skip-registry2", action="store_true", help="s3, gc: leave registry:2 out")
    p.add_argument("--scale", type=float, help="gc: the registry's size, 1.0 = 10,000 repositories (quick 0.1)")
    p.add_argument(
        "--cache",
        default=os.path.expanduser("~/.cache/berth/bench-gc"),
        help="gc: where the generated registries are kept between runs",
    )
    p.add_argument("--skip-s3", action="store_true", help="gc: leave Garage + PostgreSQL out")
    p.add_argument("--skip-small", action="store_true", help="gc: no run at a tenth of the size (memory)")
    p.add_argument("--windows", type=int, help="gc: latency windows per phase: without GC, during GC, beside a busy core (default 3)")
    p.add_argument("--load-seconds", type=float, default=10.0, help="gc: seconds per latency window")
    p.add_argument("--registry2-timeout", type=float, default=1800.0, help="gc: registry:2's dry run at most")
    p.add_argument(
        "--seed-seconds",
        type=float,
        help="s3: the most time seeding the repositories of one registry may take (default 300, quick 60)",
    )
    o = p.parse_args(argv)
    o.suite = suite
    o.mode = "quick" if o.quick else "full"
    if suite == "s3":
        o.blob_size = (64 if o.quick else 1024) * MiB
        o.repo_count = 1000 if o.quick else 10000
        o.seed_seconds = o.seed_seconds or (60.0 if o.quick else 300.0)
        o.reps = o.reps or (2 if o.quick else 3)
    elif suite == "gc":
        o.scale = o.scale or (0.1 if o.quick else 1.0)
        o.reps = o.reps or (2 if o.quick else 3)
        o.windows = 2 if o.quick and o.windows is None else (3 if o.windows is None else o.windows)
    else:
        sizes = (16, 8, 4, 2, 1) if o.quick else (96, 64, 48, 32, 24, 16, 12, 8)
        o.layer_sizes = [s * MiB for s in sizes]
        o.reps = o.reps or (2 if o.quick else 5)
    o.seed_clients = 8
    o.out = o.out or os.path.join(o.repo, "bench", "results")
    return o


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv):
    suite, rest = split_suite(argv)
    if suite not in SUITES or suite == "default":
        sys.exit(f"bench: --suite {suite}: the suites are {', '.join(SUITES)}")
    o = parse(suite, rest)
    t0 = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    o.log = log
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    os.makedirs(o.workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f"berth-bench-{suite}-", dir=o.workdir)
    # PostgreSQL runs as `postgres` when the driver is root, and must reach its directory under here.
    os.chmod(work, 0o755)
    ps = procs.Procs()
    engines = Engines(o.repo, work, log)
    try:
        meta = machine.facts(o.repo, work, o.berth, o.baseline if suite == "proxy" else None)
        meta.update(suite=suite, mode=o.mode, reps=o.reps)
        if suite == "s3":
            from . import s3suite

            rows = s3suite.run(o, work, ps, engines, meta)
        elif suite == "gc":
            from . import gcsuite

            rows = gcsuite.run(o, work, ps, engines, meta)
        else:
            from . import proxysuite

            rows = proxysuite.run(o, work, ps, meta)
        meta["loadavg_end"] = machine.loadavg()
        meta["elapsed_s"] = time.monotonic() - t0
        write(o, meta, rows)
    finally:
        ps.stop_all()
        engines.stop_all()
        shutil.rmtree(work, ignore_errors=True)


class Engines:
    """Garage and PostgreSQL, started with the repository's own scripts (scripts/garage.sh,
    scripts/postgres.sh) and stopped with them whatever happens."""

    def __init__(self, repo, work, log):
        self.repo = repo
        self.work = work
        self.log = log
        self.started = []

    def _script(self, name, *args):
        out = subprocess.run(
            [os.path.join(self.repo, "scripts", name), *args], capture_output=True, text=True, timeout=600
        )
        if out.returncode != 0:
            raise RuntimeError(f"scripts/{name} {' '.join(args)} failed: {out.stderr[-2000:]}")
        return out.stdout

    def garage(self):
        """Starts Garage; returns its BERTH_TEST_S3_* values by name (ENDPOINT, REGION, ...)."""
        d = os.path.join(self.work, "garage")
        os.makedirs(d)
        self.log("starting Garage (scripts/garage.sh)")
        out = self._script("garage.sh", "start", d)
        self.started.append(("garage.sh", d))
        env = {}
        for line in out.splitlines():
            if line.startswith("export BERTH_TEST_S3_"):
                k, v = line[len("export BERTH_TEST_S3_") :].split("=", 1)
                env[k] = v
        missing = {"ENDPOINT", "REGION", "ACCESS_KEY", "SECRET_KEY", "BUCKET"} - env.keys()
        if missing:
            raise RuntimeError(f"scripts/garage.sh printed no {', '.join(sorted(missing))}")
        return env

    def postgres(self):
        """Starts PostgreSQL; returns its URL (postgres://user:password@host:port/db)."""
        d = os.path.join(self.work, "postgres")
        os.makedirs(d)
        self.log("starting PostgreSQL (scripts/postgres.sh)")
        url = self._script("postgres.sh", "start", d).strip()
        self.started.append(("postgres.sh", d))
        return url

    def garage_pid(self):
        """The Garage server's pid (scripts/garage.sh writes it), for its CPU during transfers."""
        d = next(d for name, d in self.started if name == "garage.sh")
        with open(os.path.join(d, "garage.pid")) as f:
            return int(f.read().strip())

    def stop_all(self):
        for name, d in reversed(self.started):
            try:
                self._script(name, "stop", d)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                print(f"bench: stopping {name}: {e}", file=sys.stderr)
        self.started.clear()


def start_server(ps, work, key, argv_prefix, config_lines):
    """Starts a registry (berth or registry:2) from a configuration given as YAML lines, on a free port;
    `config_lines` may use `{port}`. Returns the Proc once /v2/ answers."""
    d = os.path.join(work, key)
    os.makedirs(d)
    port = procs.free_port()
    cfg = os.path.join(d, "config.yml")
    with open(cfg, "w") as f:
        f.write("\n".join(line.replace("{port}", str(port)) for line in config_lines) + "\n")
    proc = ps.start(
        key,
        argv_prefix + [cfg],
        os.path.join(d, "server.log"),
        f"http://127.0.0.1:{port}",
        env=procs.clean_env({"HOME": d}),
        cwd=d,
    )
    procs.wait_http(proc, "/v2/", timeout=60)
    return proc


def median(values):
    return statistics.median(values) if values else None


def _fmt(v, digits=1):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def write(o, meta, rows):
    """The table (markdown) and every run (JSON) into bench/results as `<date>-<host>-<suite>[-quick]`.

    `rows` is a list of dicts: name, unit, columns {name: [runs]}, value (column -> median), ratio
    (text), goal (text), met (bool or None), notes."""
    os.makedirs(o.out, exist_ok=True)
    stamp = meta["date"][:16].replace(":", "").replace("T", "-")
    name = f"{stamp}-{meta['host']}-{o.suite}" + ("-quick" if o.quick else "")
    cols = []
    for r in rows:
        for c in r["value"]:
            if c not in cols:
                cols.append(c)
    lines = [
        f"# berth benchmark, suite `{o.suite}` ({o.mode}), {meta['date']}",
        "",
        f"Machine: {meta['host']}, {meta['cores']} cores ({(meta.get('cpu') or {}).get('model')}), "
        f"{meta['memory_mb']:.0f} MB, kernel {meta['kernel']}, work directory on {meta['work_dir_fs']}. "
        f"berth {meta['berth_commit']}{' (uncommitted changes)' if meta['berth_tree_dirty'] else ''}; "
        f"{meta['versions'].get('registry2')}; {meta['versions'].get('skopeo')}.",
        f"Load average at start {meta['loadavg_start']}, at end {meta['loadavg_end']} "
        f"(the machine is shared: other work ran beside the benchmark). {o.reps} repetitions, medians; "
        f"{meta['elapsed_s']:.0f} s in all.",
    ]
    for extra in meta.get("notes", []):
        lines.append("")
        lines.append(extra)
    lines += ["", "| workload | " + " | ".join(cols) + " | ratio | goal | met | notes |"]
    lines.append("| --- | " + " | ".join("---:" for _ in cols) + " | ---: | --- | --- | --- |")
    for r in rows:
        vals = " | ".join(_fmt(r["value"].get(c), r.get("digits", 1)) for c in cols)
        met = {True: "yes", False: "**no**", None: "—"}[r.get("met")]
        lines.append(
            f"| {r['name']} ({r['unit']}) | {vals} | {r.get('ratio') or '—'} | {r.get('goal') or '—'} | "
            f"{met} | {r.get('notes') or ''} |"
        )
    md = "\n".join(lines) + "\n"
    with open(os.path.join(o.out, name + ".md"), "w") as f:
        f.write(md)
    with open(os.path.join(o.out, name + ".json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
        f.write("\n")
    print(md)
    print(f"written: {os.path.join(o.out, name)}.{{md,json}}")
