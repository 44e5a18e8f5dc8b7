"""The chart of a run, written as SVG by hand from the summarised figures (no plotting library).

Two panels. The first shows throughput and request rates as a share of the machine's limit on the same
data (1.0 = as fast as openssl hashes or nginx serves), with the issue's goal marked on each row. The
second shows latency, time and memory (lower is better) side by side, scaled to the larger value of the
row, with the goal marked where it falls on the scale.
"""

from xml.sax.saxutils import escape

COLORS = {"berth": "#1f6feb", "registry2": "#d1242f", "baseline": "#8250df"}
LABELS = {"berth": "berth", "registry2": "registry:2", "baseline": "baseline berth"}
W, LABEL_W, BAR_W, BAR_H, GAP = 960, 380, 460, 11, 14


def _text(x, y, s, size=12, anchor="start", weight="normal", color="#24292f", halo=False):
    # A white halo keeps a value readable where it crosses a goal line.
    extra = ' stroke="#ffffff" stroke-width="3" paint-order="stroke"' if halo else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'font-weight="{weight}" fill="{color}"{extra}>{escape(s)}</text>'
    )


def _fmt(v, unit):
    if unit in ("ms", "s", "MB"):
        return f"{v:.2f} {unit}" if v < 10 else f"{v:.1f} {unit}"
    return f"{v:,.0f} {unit}"


def render(meta, figs):
    keys = [k for k in ("berth", "registry2", "baseline") if any(f.get(k) is not None for f in figs)]
    # A lower-is-better row with a limit (a skopeo pull beside nginx serving the files) is a time, so it
    # goes with the times; its limit is named under its title.
    ratio_rows = [f for f in figs if f.get("limit") and f["better"] == "higher"]
    abs_rows = [f for f in figs if f not in ratio_rows and f.get("goal")]
    row_h = len(keys) * (BAR_H + 2) + GAP
    body = []
    y = 30
    body.append(
        _text(
            10,
            y,
            f"berth benchmark, {meta['date']}, {meta['host']} ({meta['cores']} cores), mode {meta['mode']}",
            15,
            weight="bold",
        )
    )
    y += 22
    lx = LABEL_W
    for k in keys:
        body.append(f'<rect x="{lx}" y="{y - 10}" width="12" height="12" fill="{COLORS[k]}"/>')
        body.append(_text(lx + 16, y, LABELS[k]))
        lx += 130
    body.append(f'<line x1="{lx}" y1="{y - 12}" x2="{lx}" y2="{y + 2}" stroke="#000" stroke-width="2"/>')
    body.append(_text(lx + 6, y, "goal"))
    y += 28

    # Panel 1: share of the machine's limit.
    scale_max = max([1.2] + [f.get(k, 0) / f["limit"] for f in ratio_rows for k in keys if f.get(k)])
    body.append(
        _text(
            10,
            y,
            "Throughput and request rate as a share of the machine's limit (higher is better)",
            13,
            weight="bold",
        )
    )
    y += 14
    top = y
    for f in ratio_rows:
        body += _title(y, row_h, f["title"], f"limit: {f['limit_name']}, {_fmt(f['limit'], f['unit'])}")
        goal = f.get("goal", "")
        if goal.startswith(">="):
            body.append(
                _goal_line(LABEL_W + BAR_W * float(goal.split()[1].rstrip("x")) / scale_max, y, row_h)
            )
        for i, k in enumerate(keys):
            v = f.get(k)
            if v is None:
                continue
            r = v / f["limit"]
            by = y + 4 + i * (BAR_H + 2)
            body.append(
                f'<rect x="{LABEL_W}" y="{by}" width="{BAR_W * r / scale_max:.1f}" height="{BAR_H}" fill="{COLORS[k]}"/>'
            )
            body.append(
                _text(
                    LABEL_W + BAR_W * r / scale_max + 4,
                    by + BAR_H - 1,
                    f"{r:.2f}x ({_fmt(v, f['unit'])})",
                    10,
                    halo=True,
                )
            )
        y += row_h
    one = LABEL_W + BAR_W / scale_max
    body.append(
        f'<line x1="{one:.1f}" y1="{top}" x2="{one:.1f}" y2="{y}" stroke="#57606a" stroke-dasharray="4 3"/>'
    )
    body.append(_text(one, y + 12, "1.0 = limit", 10, anchor="middle", color="#57606a"))
    y += 36

    # Panel 2: lower is better, each row on its own scale.
    body.append(
        _text(
            10,
            y,
            "Latency, time and memory (lower is better; each row scaled to its largest value)",
            13,
            weight="bold",
        )
    )
    y += 14
    for f in abs_rows:
        vals = [f.get(k) for k in keys if f.get(k) is not None]
        if not vals:
            continue
        goal_v = _abs_goal(f)
        top_v = max(vals + ([goal_v] if goal_v is not None and goal_v < 3 * max(vals) else []))
        limit = f"limit: {f['limit_name']}, {_fmt(f['limit'], f['unit'])}" if f.get("limit") else None
        body += _title(y, row_h, f["title"], limit)
        if goal_v is not None and goal_v <= top_v:
            body.append(_goal_line(LABEL_W + BAR_W * goal_v / top_v, y, row_h))
        for i, k in enumerate(keys):
            v = f.get(k)
            if v is None:
                continue
            by = y + 4 + i * (BAR_H + 2)
            wbar = BAR_W * v / top_v if top_v else 0
            body.append(
                f'<rect x="{LABEL_W}" y="{by}" width="{max(wbar, 1):.1f}" height="{BAR_H}" fill="{COLORS[k]}"/>'
            )
            body.append(_text(LABEL_W + max(wbar, 1) + 4, by + BAR_H - 1, _fmt(v, f["unit"]), 10, halo=True))
        y += row_h
    y += 10
    body.append(
        _text(
            10,
            y,
            "Every figure from one run of bench/run.sh; medians of the repetitions, memory rows the maximum.",
            10,
            color="#57606a",
        )
    )
    h = y + 14
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" '
        f'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">\n'
        f'<rect width="{W}" height="{h}" fill="#ffffff"/>\n' + "\n".join(body) + "\n</svg>\n"
    )


def _title(y, row_h, title, sub=None):
    """A row's label, on two lines when it would run into the bars (about 55 characters fit)."""
    lines = [title]
    if len(title) > 55:
        cut = title.rfind(" ", 0, 55)
        lines = [title[:cut], title[cut + 1 :]]
    top = y + row_h / 2 - 6 * (len(lines) - 1) + (0 if sub is None else -4)
    out = [_text(10, top + 13 * i, line, 12) for i, line in enumerate(lines)]
    if sub is not None:
        out.append(_text(10, top + 13 * len(lines), sub, 10, color="#57606a"))
    return out


def _goal_line(x, y, row_h):
    """The goal of a row: drawn before the bars, so that bars and their labels stay readable over it."""
    return f'<line x1="{x:.1f}" y1="{y + 1}" x2="{x:.1f}" y2="{y + row_h - GAP + 5}" stroke="#000" stroke-width="2"/>'


def _abs_goal(f):
    """Where the goal of a lower-is-better row falls in its unit: an absolute bound, or a share of
    registry:2's figure."""
    goal = f.get("goal", "")
    if not goal.startswith("<="):
        return None
    parts = goal.split()
    if parts[1].endswith("x"):
        r2 = f.get("registry2")
        return None if r2 is None else float(parts[1][:-1]) * r2
    return float(parts[1])
