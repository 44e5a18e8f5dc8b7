"""The opt-in `bigpush` group: one very large blob (16 GiB by default) pushed to berth in constant memory.

Why a group of its own, off by default: it takes minutes and most of the disk, and it answers one
question the 1 GiB pushes cannot: does berth's memory stay flat whatever the blob's size? Why no source
file: the disk has no room for one (and for the stored blob beside it), so `bench-loadgen push` generates
deterministic pseudo-random bytes, hashes them as it sends them in PATCHes, and closes with `?digest=`.
While it runs, berth's VmRSS is sampled every 0.5 s. The stored blob is deleted right after each push (the
file under the registry's root), so the disk never holds more than one.

Run it alone with e.g. `bench/run.sh --only bigpush --skip-registry2 --bigpush-size 1G`. registry:2 is
left out even when it runs (it does not make pushes durable: the comparison would not be like for like).
"""

import json
import os
import shutil
import time

from . import procs

GiB = 1 << 30

# RSS is sampled this often: coarse enough to cost nothing over minutes, fine enough to catch a buffer
# that grows with the blob.
SAMPLE_SECONDS = 0.5


def _size(text):
    """`16G`, `512M`, `1048576`: bytes."""
    units = {"K": 10, "M": 20, "G": 30}
    text = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(text[:-1]) << units[text[-1]]
    return int(text)


def add_options(p):
    p.add_argument("--bigpush-size", type=_size, default=16 * GiB, help="bigpush: blob size (e.g. 16G, 1G)")
    p.add_argument(
        "--bigpush-chunk", type=_size, default=64 << 20, help="bigpush: bytes per PATCH (e.g. 64M)"
    )


def _label(n):
    return f"{n / GiB:g} GiB" if n >= GiB else f"{n >> 20} MiB"


def rows(o):
    """The report's rows for this group (none unless it ran)."""
    if "bigpush" not in o.groups:
        return []
    from .report import Row  # report imports this module for the rows: import it back lazily

    size, chunk = _label(o.bigpush_size), _label(o.bigpush_chunk)
    return [
        Row("bigpush", f"push a {size} generated blob, {chunk} PATCHes (bench-loadgen)", "MB/s", "higher"),
        Row("bigpush_cpu", f"server CPU per GiB, {size} push", "s", "lower", digits=2),
        Row(
            "bigpush_rss_before",
            f"resident memory before the {size} push",
            "MB",
            "lower",
            agg="max",
            digits=1,
        ),
        Row(
            "bigpush_rss_peak",
            f"resident memory, peak during the {size} push (VmRSS every {SAMPLE_SECONDS} s)",
            "MB",
            "lower",
            goal=("abs", "<=", 40),
            agg="max",
            digits=1,
        ),
    ]


def _blob_path(root, digest):
    algo, hexdigest = digest.split(":", 1)
    return os.path.join(root, "blobs", algo, hexdigest[:2], hexdigest)


def run(b, rep):
    """One big push to each berth of the run (registry:2 excluded), recorded in `b.results`."""
    o = b.o
    free = shutil.disk_usage(b.work).free
    if free < o.bigpush_size + 4 * GiB:
        raise RuntimeError(
            f"bigpush: {_label(o.bigpush_size)} does not fit: {free / GiB:.1f} GiB free under {b.work}"
        )
    for t in b.targets:
        if t.key == "registry2":
            continue
        pid = t.proc.pid
        url = f"{t.url}/v2/bench/bigpush/"
        argv = [o.loadgen, "push", "--size", str(o.bigpush_size), "--chunk", str(o.bigpush_chunk)]
        argv += ["--seed", str(rep + 1), url]
        os.sync()
        before = procs.status_kib(pid, "VmRSS") or 0
        cpu0 = procs.cpu_seconds(pid)
        t0 = time.monotonic()
        with procs.RssSampler([pid], interval=SAMPLE_SECONDS) as rss:
            _, _, out = procs.run_timed(argv)
        wall = time.monotonic() - t0
        cpu = procs.cpu_seconds(pid) - cpu0
        peak = max(rss.peak_kib[pid], procs.status_kib(pid, "VmRSS") or 0)
        got = json.loads(out.strip().splitlines()[-1])
        path = _blob_path(t.root, got["digest"])
        if not os.path.exists(path):
            raise RuntimeError(f"bigpush: {t.label} answered 201 but {path} does not exist")
        os.remove(path)
        mb = lambda kib: kib * 1024 / 1e6  # noqa: E731
        b.results.add("bigpush", t.key, {"value": got["mbps"], "rss_mb": mb(peak), "server_cpu": cpu / wall})
        b.results.add("bigpush_cpu", t.key, cpu / (o.bigpush_size / GiB))
        b.results.add("bigpush_rss_before", t.key, mb(before))
        b.results.add("bigpush_rss_peak", t.key, mb(peak))
        b.log(
            f"  bigpush {t.label}: {_label(o.bigpush_size)} at {got['mbps']:.0f} MB/s "
            f"in {got['seconds']:.1f} s, "
            f"server CPU {cpu:.1f} s ({cpu / wall:.2f} cores), RSS {mb(before):.1f} MB before, "
            f"{mb(peak):.1f} MB peak"
        )
