"""Request-rate workloads: requests/s, p50 and p99 latency, errors, and the load generator's own CPU.

GETs go through wrk. wrk's summary is printed for people; a Lua `done` hook prints the same figures as
one JSON line instead, so nothing is scraped from a human format. HEADs go through bench-loadgen
(bench/loadgen), because wrk 4.1 waits forever for the body of a HEAD answer with a Content-Length; it
prints the same JSON line. Every non-2xx/3xx answer counts as an error and fails the measurement: a fast
404 must never pass for a fast GET.
"""

import json
import os

from . import procs

LUA = """\
wrk.method = "{method}"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%.1f,"p99_us":%.1f,"mean_us":%.1f,"max_us":%.1f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


def _script(work, method, headers):
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    name = f"wrk-{method}-{abs(hash(tuple(sorted(headers.items())))) % 10**8}.lua"
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(LUA.format(method=method, headers=lines))
    return path


def run(
    work,
    url,
    method="GET",
    headers=None,
    connections=64,
    threads=2,
    seconds=5,
    server_pid=None,
    server_tree=False,
    loadgen=None,
):
    """Runs wrk (or, given `loadgen`, bench-loadgen) against `url`; returns a dict: rps, p50_ms, p99_ms,
    client_cpu (cores), server_cpu (cores, when `server_pid` is given; `server_tree` adds its children,
    as for nginx's workers), and `tool`."""
    headers = headers or {}
    if loadgen:
        argv = [loadgen, "-m", method, "-c", str(connections), "-t", str(threads), "-d", str(seconds)]
        for k, v in headers.items():
            argv += ["-H", f"{k}: {v}"]
        argv.append(url)
    else:
        if method != "GET":
            raise ValueError("wrk 4.1 cannot measure HEAD: use bench-loadgen")
        script = _script(work, method, headers)
        argv = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            script,
            url,
        ]
    cpu0 = procs.cpu_seconds(server_pid, server_tree) if server_pid else None
    wall, cpu, out = procs.run_timed(argv, timeout=seconds + 60)
    cpu1 = procs.cpu_seconds(server_pid, server_tree) if server_pid else None
    line = next((ln for ln in out.splitlines() if ln.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"{argv[0]} printed no summary for {url}:\n{out[-2000:]}")
    r = json.loads(line)
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    if r["requests"] == 0 or errors:
        raise RuntimeError(f"{method} {url}: {r['requests']} requests, errors {r}")
    dur = r["duration_us"] / 1e6
    return {
        "rps": r["requests"] / dur,
        "requests": r["requests"],
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "client_cpu": cpu / wall,
        "server_cpu": None if cpu0 is None else (cpu1 - cpu0) / wall,
        "tool": "bench-loadgen" if loadgen else "wrk",
    }
