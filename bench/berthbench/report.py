"""From the measurements to the published figures: medians, ratios, the issue's goals, a Markdown table and
the JSON document that the chart is drawn from.

The rows and their goals are declared once here (`rows()`), so the table, the JSON and the chart cannot
disagree about what a figure means or which way is better. Goals are the ones of issue 5, stated as
ratios to the machine's limit or to registry:2 in the same run (the machine is shared and noisy).
"""

import statistics

from . import bigpush


def _size(n):
    return f"{n >> 30} GiB" if n >= 1 << 30 else f"{n >> 20} MiB"


class Row:
    def __init__(
        self, rid, title, unit, better, limit=None, limit_name=None, goal=None, agg="median", digits=0
    ):
        self.id = rid
        self.title = title
        self.unit = unit
        self.better = better  # "higher" or "lower"
        self.limit = limit  # row id whose "limit" column is this row's limit
        self.limit_name = limit_name
        self.goal = goal  # (kind, op, bound): kind "limit" | "registry2" | "abs"; op ">=" | "<="
        self.agg = agg
        self.digits = digits


def rows(o):
    blob, chunk, n = _size(o.blob_size), _size(o.chunk_size), f"{o.seed_count:,}"
    mb = sum(o.layer_sizes) / 1e6
    c = o.connections
    return [
        Row(
            "push_mono",
            f"push {blob} blob, monolithic PUT",
            "MB/s",
            "higher",
            "limit_sha256",
            "openssl dgst -sha256",
            ("limit", ">=", 0.7),
        ),
        Row(
            "push_chunked",
            f"push {blob} blob, {chunk} PATCHes",
            "MB/s",
            "higher",
            "limit_sha256",
            "openssl dgst -sha256",
            ("limit", ">=", 0.7),
        ),
        Row(
            "pull_1",
            f"pull {blob} blob, 1 client",
            "MB/s",
            "higher",
            "pull_1",
            "nginx sendfile",
            ("limit", ">=", 0.95),
        ),
        Row(
            "pull_8",
            f"pull {blob} blob, 8 clients at once (total)",
            "MB/s",
            "higher",
            "pull_8",
            "nginx sendfile",
            ("limit", ">=", 0.95),
        ),
        Row(
            "manifest_get",
            f"manifest GET, {c} connections (wrk)",
            "req/s",
            "higher",
            "limit_small",
            "nginx small file",
            ("limit", ">=", 0.5),
        ),
        Row(
            "manifest_head",
            f"manifest HEAD, {c} connections (bench-loadgen)",
            "req/s",
            "higher",
            "limit_small_head",
            "nginx small file HEAD",
            ("limit", ">=", 0.5),
        ),
        Row(
            "blob_head",
            f"blob HEAD, {c} connections (bench-loadgen)",
            "req/s",
            "higher",
            "limit_small_head",
            "nginx small file HEAD",
            ("limit", ">=", 0.5),
        ),
        Row(
            "tags_page",
            f"tags list, page of 100 of {n} (p50, 1 client)",
            "ms",
            "lower",
            goal=("abs", "<=", 10),
            digits=2,
        ),
        Row(
            "catalog_page",
            f"catalog, page of 100 of {n} repositories (p50, 1 client)",
            "ms",
            "lower",
            goal=("abs", "<=", 10),
            digits=2,
        ),
        Row(
            "skopeo_push",
            f"skopeo copy in, {len(o.layer_sizes)} layers, {mb:.0f} MB",
            "s",
            "lower",
            goal=("registry2", "<=", 0.8),
            digits=2,
        ),
        Row(
            "skopeo_pull",
            f"skopeo copy out, {len(o.layer_sizes)} layers, {mb:.0f} MB",
            "s",
            "lower",
            "skopeo_pull",
            "nginx serving the image's files",
            goal=("registry2", "<=", 0.9),
            digits=2,
        ),
        Row("pull_16", f"pull {blob} blob, 16 clients at once (total)", "MB/s", "higher"),
        Row("seed_tags", f"seeding: manifest PUTs by tag ({o.seed_clients} clients)", "PUT/s", "higher"),
        Row(
            "seed_repos",
            f"seeding: new repository = 2 mounts + manifest PUT ({o.seed_clients} clients)",
            "repo/s",
            "higher",
        ),
        Row(
            "rss_idle",
            "resident memory, idle after start",
            "MB",
            "lower",
            goal=("abs", "<=", 20),
            agg="max",
            digits=1,
        ),
        Row(
            "rss_push",
            f"resident memory a {blob} push adds (peak during it minus before it)",
            "MB",
            "lower",
            agg="max",
            digits=1,
        ),
        Row(
            "rss_pull16",
            f"resident memory, 16 clients pulling {blob} (peak)",
            "MB",
            "lower",
            goal=("abs", "<=", 40),
            agg="max",
            digits=1,
        ),
        Row(
            "rss_peak",
            "peak resident memory over the push/pull/rates phase (VmHWM)",
            "MB",
            "lower",
            goal=("abs", "<=", 40),
            agg="max",
            digits=1,
        ),
        Row(
            "rss_peak_discovery",
            f"peak resident memory, seeding and listing {n} tags and repositories (VmHWM)",
            "MB",
            "lower",
            goal=("abs", "<=", 40),
            agg="max",
            digits=1,
        ),
    ] + bigpush.rows(o)


LIMITS = [
    ("limit_sha256", "openssl dgst -sha256 of the blob", "MB/s"),
    ("limit_read", "read the blob from the page cache (dd bs=1M)", "MB/s"),
    ("limit_disk", "durable write of the blob (dd conv=fdatasync)", "MB/s"),
    ("pull_1", "nginx sendfile, 1 client", "MB/s"),
    ("pull_8", "nginx sendfile, 8 clients at once (total)", "MB/s"),
    ("limit_small", "nginx small file, GET at 64 connections (wrk)", "req/s"),
    ("limit_small_lg", "nginx small file, GET at 64 connections (bench-loadgen)", "req/s"),
    ("limit_small_head", "nginx small file, HEAD at 64 connections (bench-loadgen)", "req/s"),
    ("skopeo_pull", "skopeo copy out from nginx serving the image's files", "s"),
]

COLUMNS = [("berth", "berth"), ("registry2", "registry:2"), ("baseline", "baseline")]


def _value(run):
    return run["value"] if isinstance(run, dict) else run


def _agg(runs, how):
    vals = [_value(r) for r in runs]
    if not vals:
        return None
    return max(vals) if how == "max" else statistics.median(vals)


def _detail(runs, key):
    vals = [r[key] for r in runs if isinstance(r, dict) and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarise(results, o):
    """The figures of every row: medians per column, the limit, ratios, goal and whether it is met."""
    out = []
    for row in rows(o):
        data = results.rows.get(row.id, {})
        fig = {"id": row.id, "title": row.title, "unit": row.unit, "better": row.better, "aggregate": row.agg}
        for key, _ in COLUMNS:
            runs = data.get(key)
            if not runs:
                continue
            fig[key] = _agg(runs, row.agg)
            fig[key + "_runs"] = [_value(r) for r in runs]
            details = {
                k: _detail(runs, k)
                for k in ("p50_ms", "p99_ms", "client_cpu", "server_cpu", "rss_mb", "entries")
            }
            details = {k: v for k, v in details.items() if v is not None}
            if details:
                fig[key + "_detail"] = details
        if row.limit:
            lruns = results.rows.get(row.limit, {}).get("limit")
            if lruns:
                fig["limit"] = _agg(lruns, "median")
                fig["limit_runs"] = [_value(r) for r in lruns]
                fig["limit_name"] = row.limit_name
                ldet = {k: _detail(lruns, k) for k in ("p50_ms", "p99_ms", "client_cpu", "server_cpu")}
                ldet = {k: v for k, v in ldet.items() if v is not None}
                if ldet:
                    fig["limit_detail"] = ldet
        b = fig.get("berth")
        if b is not None and fig.get("limit"):
            fig["berth_over_limit"] = b / fig["limit"]
        if fig.get("registry2") is not None and fig.get("limit"):
            fig["registry2_over_limit"] = fig["registry2"] / fig["limit"]
        if b is not None and fig.get("registry2"):
            fig["berth_over_registry2"] = b / fig["registry2"]
        if b is not None and fig.get("baseline"):
            fig["berth_over_baseline"] = b / fig["baseline"]
        if row.id.startswith("push_"):
            disk = _agg(results.rows.get("limit_disk", {}).get("limit", []), "median")
            if b is not None and disk:
                fig["berth_over_disk"] = b / disk
                fig["registry2_over_disk"] = (fig.get("registry2") or 0) / disk
        if row.goal:
            fig["goal"] = _goal_text(row)
            fig["met"] = _met(row, fig)
        out.append(fig)
    limits = []
    for rid, title, unit in LIMITS:
        runs = results.rows.get(rid, {}).get("limit")
        if runs:
            entry = {
                "id": rid,
                "title": title,
                "unit": unit,
                "value": _agg(runs, "median"),
                "runs": [_value(r) for r in runs],
            }
            det = {k: _detail(runs, k) for k in ("p50_ms", "p99_ms", "client_cpu", "server_cpu")}
            entry.update({k: v for k, v in det.items() if v is not None})
            limits.append(entry)
    return out, limits


def _goal_text(row):
    kind, op, bound = row.goal
    what = {"limit": row.limit_name, "registry2": "registry:2", "abs": None}[kind]
    extra = ", p99 <= 10 ms" if row.unit == "req/s" else ""
    if what is None:
        return f"{op} {bound:g} {row.unit}{extra}"
    return f"{op} {bound:g}x {what}{extra}"


def _met(row, fig):
    kind, op, bound = row.goal
    b = fig.get("berth")
    if b is None:
        return None
    value = {"limit": fig.get("berth_over_limit"), "registry2": fig.get("berth_over_registry2"), "abs": b}[
        kind
    ]
    if value is None:
        return None
    ok = value >= bound if op == ">=" else value <= bound
    if row.unit == "req/s":
        p99 = fig.get("berth_detail", {}).get("p99_ms")
        ok = ok and p99 is not None and p99 <= 10
    return ok


def _fmt(v, digits):
    if v is None:
        return "—"
    if digits == 0 and abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.{max(digits, 1 if abs(v) < 100 else 0)}f}"


def _ratio(v):
    return "—" if v is None else f"{v:.2f}x"


def _notes(fig):
    notes = []
    for key, label in (
        ("berth", "berth"),
        ("registry2", "registry:2"),
        ("baseline", "baseline"),
        ("limit", "limit"),
    ):
        d = fig.get(key + "_detail")
        if not d:
            continue
        if "p99_ms" in d and fig["unit"] == "req/s":
            notes.append(
                f"{label} p50/p99 {d['p50_ms']:.2f}/{d['p99_ms']:.2f} ms, "
                f"server {d.get('server_cpu', 0):.2f} + client {d.get('client_cpu', 0):.2f} cores"
            )
        elif "p99_ms" in d:
            entries = f", {d['entries']:,.0f} entries" if d.get("entries", 100) != 100 else ""
            notes.append(f"{label} p99 {d['p99_ms']:.2f} ms{entries}")
        elif "server_cpu" in d and fig["unit"] == "s":
            notes.append(f"{label} CPU {d['server_cpu']:.2f} s + skopeo {d.get('client_cpu', 0):.2f} s")
    if fig["better"] == "lower" and fig.get("limit") and fig.get("registry2"):
        # A time whose limit is a static server: how much of registry:2's time is the client's own.
        notes.append(f"{fig['limit_name']} / registry:2 = {fig['limit'] / fig['registry2']:.2f}x")
    if "berth_over_disk" in fig:
        notes.append(
            f"vs durable write: berth {fig['berth_over_disk']:.2f}x, registry:2 {fig['registry2_over_disk']:.2f}x"
        )
    if fig["id"].startswith("push_") and "berth_detail" in fig:
        notes.append(f"berth RSS {fig['berth_detail'].get('rss_mb', 0):.1f} MB during the push (median)")
    return "; ".join(notes)


def markdown(meta, figs, limits, has_baseline, o):
    """The table of a run, with the facts of the machine and the run above it."""
    m = meta
    cpu = m.get("cpu") or {}
    v = m["versions"]
    lines = [
        f"# berth benchmark: {m['date']} on {m['host']}",
        "",
        f"- machine: {cpu.get('model')} (SHA extensions: {'yes' if cpu.get('sha_ni') else 'no'}), {m['cores']} cores, "
        f"{m['memory_mb'] / 1000:.0f} GB, kernel {m['kernel']}, work dir on {m['work_dir_fs']}",
        f"- berth {m['berth_commit']}{' (with uncommitted changes)' if m['berth_tree_dirty'] else ''}"
        + (f"; baseline {m['baseline']} ({m.get('baseline_commit')})" if has_baseline else ""),
        f"- registry:2 = {v['registry2']}; {v['nginx']}; {v['wrk']}; {v['skopeo']}; {v['openssl']}",
        f"- mode {m['mode']}: {m['reps']} repetitions (median; memory rows: maximum), "
        f"load average {m['loadavg_start']} at start, {m.get('loadavg_end')} at end, {m.get('elapsed_s', 0):.0f} s",
        "",
    ]
    head = ["workload", "unit", "berth", "registry:2"]
    if has_baseline:
        head.append("baseline")
    head += ["limit", "berth/limit", "berth/registry:2"]
    if has_baseline:
        head.append("berth/baseline")
    head += ["goal (issue 5)", "met", "notes"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    digits = {r.id: r.digits for r in rows(o)}
    for f in figs:
        d = digits[f["id"]]
        cells = [f["title"], f["unit"], _fmt(f.get("berth"), d), _fmt(f.get("registry2"), d)]
        if has_baseline:
            cells.append(_fmt(f.get("baseline"), d))
        lim = f.get("limit")
        cells.append("—" if lim is None else f"{_fmt(lim, d)} ({f['limit_name']})")
        cells += [_ratio(f.get("berth_over_limit")), _ratio(f.get("berth_over_registry2"))]
        if has_baseline:
            cells.append(_ratio(f.get("berth_over_baseline")))
        met = f.get("met")
        cells += [f.get("goal", "—"), {True: "yes", False: "**no**", None: "—"}[met], _notes(f)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## The machine's limits on the same data",
        "",
        "| limit | value | notes |",
        "|---|---|---|",
    ]
    for lim in limits:
        note = ""
        cpu = f"nginx {lim.get('server_cpu', 0):.2f} + client {lim.get('client_cpu', 0):.2f}"
        if "p99_ms" in lim:
            note = f"p50/p99 {lim['p50_ms']:.2f}/{lim['p99_ms']:.2f} ms, {cpu} cores"
        elif "server_cpu" in lim:
            note = f"CPU {cpu} s"
        d = 2 if lim["unit"] == "s" else 0
        runs = ", ".join(_fmt(x, d) for x in lim["runs"])
        value = f"{_fmt(lim['value'], d)} {lim['unit']}"
        lines.append(f"| {lim['title']} | {value} | runs: {runs}{'; ' + note if note else ''} |")
    lines.append("")
    return "\n".join(lines)
