"""The benchmark's driver: options, the order of the run, and the guarantee that it leaves nothing behind.

The order matters. First the tags-list and catalog workloads, on registries of their own seeded with
10,000 tags and repositories (their data on tmpfs: see `discovery_parent`). Then fresh registries for
everything else: idle memory before any request, then the repeated workloads (each against every
registry and its limit in turn), the 16-client memory test, and the peak memory (VmHWM) last, so that it
covers that whole phase. Whatever fails, `finally` stops every process the
run started and removes its work directory; SIGTERM and SIGHUP are turned into an exit so it runs.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time

from . import bigpush, machine, procs, report, servers, svg, workloads

MiB = 1 << 20

# The workload groups --only picks from, in the order of the run.
GROUPS = ("pages", "push", "pull", "rates", "skopeo", "memory")
# Groups that run only when --only names them (long, or heavy on the disk).
OPT_IN = ("bigpush",)


def parse(argv):
    p = argparse.ArgumentParser(
        prog="bench/run.sh",
        description="Benchmark berth beside registry:2 and the machine's limits (see bench/README.md).",
    )
    p.add_argument("--quick", action="store_true", help="small sizes and 2 repetitions (about a minute)")
    p.add_argument("--reps", type=int, help="repetitions of each workload (default 3, quick 2)")
    p.add_argument("--berth", required=True, help="the berth binary to measure")
    p.add_argument("--baseline", help="another berth binary, measured beside it (regressions)")
    p.add_argument("--loadgen", required=True, help="the bench-loadgen binary (HEAD requests)")
    p.add_argument("--out", default=None, help="results directory (default bench/results)")
    p.add_argument(
        "--workdir", default="/var/tmp", help="where the temporary data directories go (a disk, not tmpfs)"
    )
    p.add_argument(
        "--discovery-dir", help="where the tags/catalog registries keep their data (default /dev/shm)"
    )
    p.add_argument("--repo", default=os.getcwd(), help="the berth repository (for the commit recorded)")
    p.add_argument(
        "--only",
        help="comma-separated workload groups to run, for iterating on one: " + ",".join(GROUPS + OPT_IN)
        + " (pull and memory push one blob first; a partial run's files get an -only suffix;"
        + " " + ",".join(OPT_IN) + " runs only when named)",
    )
    p.add_argument(
        "--skip-registry2", action="store_true", help="leave registry:2 out (iterating on berth alone)"
    )
    bigpush.add_options(p)
    o = p.parse_args(argv)
    o.groups = set(GROUPS) if not o.only else {g.strip() for g in o.only.split(",") if g.strip()}
    unknown = o.groups - set(GROUPS) - set(OPT_IN)
    if unknown:
        known = ", ".join(GROUPS + OPT_IN)
        p.error(f"--only: unknown group(s) {', '.join(sorted(unknown))}; the groups are {known}")
    if o.quick:
        o.blob_size, o.chunk_size, o.seed_count, o.wrk_seconds = 64 * MiB, 16 * MiB, 1000, 2
        o.layer_sizes = [s * MiB for s in (8, 4, 2, 1, 1)]
        o.reps = o.reps or 2
    else:
        o.blob_size, o.chunk_size, o.seed_count, o.wrk_seconds = 1024 * MiB, 64 * MiB, 10000, 4
        o.layer_sizes = [s * MiB for s in (96, 48, 24, 12, 6, 3, 1, 1)]
        o.reps = o.reps or 3
    o.connections, o.seed_clients, o.pull_clients = 64, 8, (1, 8)
    o.out = o.out or os.path.join(o.repo, "bench", "results")
    o.mode = "quick" if o.quick else "full"
    return o


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    o = parse(sys.argv[1:] if argv is None else argv)
    t0 = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    o.log = log
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    os.makedirs(o.workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="berth-bench-", dir=o.workdir)
    # nginx runs unprivileged and must reach the files berth stored under here.
    os.chmod(work, 0o755)
    ps = procs.Procs()
    try:
        meta = machine.facts(o.repo, work, o.berth, o.baseline)
        meta.update(
            mode=o.mode, reps=o.reps, blob_size=o.blob_size, chunk_size=o.chunk_size, seed_count=o.seed_count
        )
        if o.baseline:
            meta["baseline"] = os.path.abspath(o.baseline)
        figs, limits = run(o, work, ps, log, meta)
        meta["loadavg_end"] = machine.loadavg()
        meta["elapsed_s"] = time.monotonic() - t0
        write(o, meta, figs, limits)
    finally:
        ps.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def _start_registries(o, ps, work):
    targets = [servers.start_registry(ps, work, "berth", "berth", [os.path.abspath(o.berth), "serve"])]
    if not o.skip_registry2:
        targets.append(
            servers.start_registry(ps, work, "registry2", "registry:2", ["docker-registry", "serve"], registry2=True)
        )
    if o.baseline:
        targets.append(
            servers.start_registry(ps, work, "baseline", "baseline", [os.path.abspath(o.baseline), "serve"])
        )
    return targets


def discovery_parent(o):
    """Where the tags-and-catalog registries keep their data: tmpfs when there is one with room.

    Why not the disk: registry:2 keeps a directory per tag and per repository (about 20 inodes each), and
    on a disk mounted with online discard, as this machine's is, deleting 10,000 repositories' worth
    takes many minutes. Listing pages reads metadata that is in memory either way, so tmpfs changes
    nothing the workload measures; the disk is where the pushes and pulls run."""
    if o.discovery_dir:
        return o.discovery_dir
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
        if st.f_bavail * st.f_frsize > 2 << 30 and os.access(shm, os.W_OK):
            return shm
    except OSError:
        pass
    return o.workdir


def run(o, work, ps, log, meta):
    # Phase 1: tags list and catalog, on registries of their own seeded with seed_count of each.
    parent = discovery_parent(o)
    meta["discovery_dir_fs"] = machine.fs_type(parent)
    docroot = os.path.join(work, "nginx-root")
    os.makedirs(docroot)
    b = workloads.Bench(o, work, ps, [], docroot)
    if "pages" in o.groups:
        dwork = tempfile.mkdtemp(prefix="berth-bench-discovery-", dir=parent)
        try:
            dtargets = _start_registries(o, ps, dwork)
            b.targets = dtargets
            b.seed_discovery(dtargets)
            for _ in range(o.reps):
                b.pages(dtargets)
            log("  pages done")
            b.peak_rss(dtargets, "rss_peak_discovery")
            for t in dtargets:
                ps.stop(t.proc)
        finally:
            shutil.rmtree(dwork, ignore_errors=True)

    # Phase 2: everything else, on registries whose data is on the disk, as in production.
    targets = _start_registries(o, ps, work)
    b.targets = targets
    g = o.groups
    needs_blob = bool(g & {"push", "pull", "memory"})
    time.sleep(1)  # let the runtimes settle before reading idle memory
    b.idle_rss()
    b.make_data()
    b.nginx = servers.start_nginx(ps, work, docroot, workers=os.cpu_count() or 2)
    b.seed_hot()
    for rep in range(o.reps):
        log(f"repetition {rep + 1} of {o.reps}")
        if "push" in g or (needs_blob and rep == 0):
            b.push(rep, chunked=False)
        if needs_blob and rep == 0:
            b.prepare_pulls()
        if "push" in g:
            b.push(rep, chunked=True)
        if "pull" in g:
            for clients in o.pull_clients:
                b.pulls(rep, clients)
            log("  pulls done")
        if "rates" in g:
            b.rates()
            log("  request rates done")
        if "skopeo" in g:
            b.skopeo(rep)
        if "bigpush" in g:
            bigpush.run(b, rep)
    if "memory" in g:
        b.rss_under_pulls(16)
    b.peak_rss(targets)
    for t in targets:
        if not t.proc.alive():
            raise RuntimeError(f"{t.label} died during the run:\n{t.proc.log_tail()}")
    return report.summarise(b.results, o)


def write(o, meta, figs, limits):
    os.makedirs(o.out, exist_ok=True)
    stamp = meta["date"][:16].replace(":", "").replace("T", "-")
    name = f"{stamp}-{meta['host']}" + ("-quick" if o.quick else "")
    if o.only:
        name += "-only-" + "-".join(sorted(o.groups))
    md = report.markdown(meta, figs, limits, bool(o.baseline), o)
    doc = {"meta": meta, "rows": figs, "limits": limits}
    with open(os.path.join(o.out, name + ".md"), "w") as f:
        f.write(md)
        f.write(f"\n![chart]({name}.svg)\n")
    with open(os.path.join(o.out, name + ".json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(os.path.join(o.out, name + ".svg"), "w") as f:
        f.write(svg.render(meta, figs))
    print(md)
    print(f"written: {os.path.join(o.out, name)}.{{md,json,svg}}")
