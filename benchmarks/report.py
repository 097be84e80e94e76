"""``latest.md``: every figure of a run as Markdown tables, targets first."""

from __future__ import annotations

from typing import Any

from benchmarks import threads
from benchmarks.peers import OURS
from benchmarks.targets import evaluate


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _spread(s: dict[str, float] | None, scale: float = 1.0, digits: int = 2) -> str:
    """``median [p25-p75]``."""
    if not s:
        return "-"
    median, p25, p75 = (f"{s[key] / scale:.{digits}f}" for key in ("median", "p25", "p75"))
    return f"{median} [{p25}-{p75}]"


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    out = [
        "# Benchmark results\n",
        f"Produced by `{meta['command']}` ({meta['size']} run) on {meta['started']}, "
        f"commit `{meta['commit']}` (code measured: {meta.get('code', 'unknown')}), "
        f"in {meta['seconds']:.0f} s.\n",
        f"Machine: {meta['cpus']} CPUs, load average {meta['load_before']} before and "
        f"{meta['load_after']} after the run; Python {meta['python']}; Redis {meta['redis']}.\n",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".\n",
        f"Times our Redis backend lost Redis and ran on its local fallback in the main process: "
        f"{meta.get('backend_outages', 'not measured')} (worker processes: see their tables).\n",
        "Only ratios taken within this run mean anything: the machine is shared and noisy. "
        "Spreads are `median [p25-p75]` over interleaved repeats. `benchmarks/README.md` "
        "explains every figure.\n",
    ]
    for section, error in (results.get("errors") or {}).items():
        out.append(f"**Section `{section}` failed:** `{error}`\n")
    out += ["## Targets\n", _targets(results)]
    out += [f"![{name}]({name})\n" for name in results.get("charts") or []]
    out += _inprocess(results)
    out += _redis(results)
    out += _scale(results)
    out += [
        f"## Threads of one process on one circuit ({b})\n\n" + threads.table(d)
        for b, d in (results.get("threads") or {}).items()
    ]
    out += _stampede(results)
    out += _propagation(results)
    out += _admin(results)
    out += _profile(results)
    return "\n".join(out)


def _targets(results: dict[str, Any]) -> str:
    rows = [[r["target"], r["goal"], _num(r["measured"]), r["result"]] for r in evaluate(results)]
    return _table(["target", "goal", "measured", "result"], rows)


def _inprocess(results: dict[str, Any]) -> list[str]:
    out = []
    for flavour, data in (results.get("inprocess") or {}).items():
        out.append(f"## In-process overhead, {flavour} (memory backend for ours)\n")
        if data.get("missing"):
            out.append(f"Not installed, not measured: {', '.join(data['missing'])}.\n")
        peers = [lib for lib in data["libs"] if lib != OURS]
        rows = []
        for path, by_lib in data["paths"].items():
            rows.append([path, "bare call", _spread(by_lib["bare"]["ns"], 1000, 3), "1", "0", ""])
            for lib in data["libs"]:
                d = by_lib[lib]
                vs = ", ".join(
                    f"{_num(d[f'overhead_vs_{p}']['median'])}x {p}"
                    for p in peers
                    if f"overhead_vs_{p}" in d
                )
                rows.append(
                    [
                        path,
                        lib,
                        _spread(d["ns"], 1000, 3),
                        _spread(d["ratio_to_bare"], 1, 1),
                        _spread(d["overhead_ns"], 1000, 3),
                        vs,
                    ]
                )
        out.append(
            _table(
                ["path", "library", "µs per call", "x bare", "overhead µs", "our overhead as"],
                rows,
            )
        )
    return out


def _redis(results: dict[str, Any]) -> list[str]:
    data = results.get("redis")
    if not data:
        return []
    out = ["## Redis: cost of one protected call\n"]
    if data.get("missing"):
        out.append(f"Not installed, not measured: {', '.join(data['missing'])}.\n")
    rows = []
    for lib, paths in data["results"].items():
        label = f"{lib} ({data['flavour'][lib]})"
        if "error" in paths:
            rows.append([label, "all", "could not run: " + paths["error"], "", "", "", ""])
            continue
        for path, d in paths.items():
            commands = ", ".join(f"{k} {v:.2g}" for k, v in d["by_command"].items() if v >= 0.01)
            rows.append(
                [
                    label,
                    path,
                    _num(d["round_trips"]),
                    _num(d["background_round_trips"]),
                    _num(d["commands"]),
                    commands,
                    _spread(d["per_ping"], 1, 1),
                ]
            )
    header = [
        "library",
        "path",
        "round trips",
        "background round trips",
        "commands executed",
        "by command",
        "time in PINGs",
    ]
    out.append(_table(header, rows))
    return out


def _scale(results: dict[str, Any]) -> list[str]:
    out = []
    tp = results.get("throughput")
    if tp:
        out.append("## Throughput through one shared Redis circuit (calls per second)\n")
        for upstream in tp["upstreams"]:
            mine = [r for r in tp["rows"] if r["upstream"] == upstream]
            configs = sorted({(r["lib"], r["threads"]) for r in mine})
            procs = sorted({r["processes"] for r in mine})
            rows = []
            for lib, threads in configs:
                by_p = {
                    r["processes"]: r["calls_per_second"]
                    for r in mine
                    if (r["lib"], r["threads"]) == (lib, threads)
                }
                rows.append([lib, threads] + [f"{by_p.get(p, 0):,.0f}" for p in procs])
            out.append(f"Upstream: {upstream}.\n")
            degraded = sum(r.get("backend_outages", 0) for r in mine)
            if degraded:
                out.append(f"**Our backend fell back to local state {degraded} times here.**\n")
            out.append(_table(["library", "threads/process"] + [f"{p} proc" for p in procs], rows))
    for backend, data in (results.get("circuits") or {}).items():
        out.append(f"## Our ok-path cost vs circuits and window ({backend} backend)\n")
        rows = []
        for kind in ("circuits", "windows"):
            for r in data[kind]:
                what = f"{r['circuits']} circuits"
                if kind == "windows":
                    what = f"window {r['window_seconds']} s, failure-rate rule 50 %"
                if backend == "redis":
                    rows.append([what, _spread(r["per_ping"], 1, 1), _num(r["round_trips"])])
                else:
                    rows.append(
                        [what, _spread(r["ns"], 1000, 3), _spread(r["overhead_ns"], 1000, 3)]
                    )
        header = (
            ["configuration", "time in PINGs", "round trips"]
            if backend == "redis"
            else ["configuration", "µs per call", "overhead µs"]
        )
        out.append(_table(header, rows))
    return out


def _stampede(results: dict[str, Any]) -> list[str]:
    data = results.get("stampede")
    if not data:
        return []
    rows = [
        [
            r["lib"],
            r["processes"],
            r["round"],
            r["opened"],
            _num(r.get("opened_events")),
            _num(r.get("alerts_sent")),
            r["upstream_calls"],
            r["calls"],
            r.get("backend_outages", 0),
        ]
        for r in data["rows"]
    ]
    header = [
        "library",
        "processes",
        "round",
        "open transitions",
        "opened events stored",
        "alerts sent",
        "upstream calls",
        "calls made",
        "backend outages",
    ]
    return [
        f"## Processes failing together (threshold {data['threshold']}, Redis)\n",
        _table(header, rows),
    ]


def _propagation(results: dict[str, Any]) -> list[str]:
    data = results.get("propagation")
    if not data:
        return []
    groups: dict[tuple[int, int, str], list[float | None]] = {}
    for r in data["rows"]:
        groups.setdefault((r["policies"], r["workers"], r["action"]), []).append(r["seconds"])
    rows = []
    for (policies, workers, action), values in groups.items():
        done = sorted(v for v in values if v is not None)
        never = len(values) - len(done)
        rows.append(
            [
                policies,
                workers,
                action,
                _num(done[len(done) // 2], 3) if done else "-",
                _num(done[-1], 3) if done else "-",
                f"{never} of {len(values)}" if never else "0",
            ]
        )
    header = ["policies in table", "workers", "action", "median s", "worst s", "never applied"]
    return [
        f"## Propagation to every worker (POLICY_REFRESH_SECONDS = {data['refresh_seconds']:g}, "
        f"workers call every {data['poll_seconds'] * 1000:g} ms)\n",
        _table(header, rows),
    ]


def _admin(results: dict[str, Any]) -> list[str]:
    out = []
    for backend, data in (results.get("admin") or {}).items():
        rows = [
            [
                r["policies"],
                r["rows_shown"],
                _spread(r["ms"], 1, 1),
                r["sql_queries"],
                r["redis_round_trips"],
                r["redis_commands"],
                r.get("most_script_keys", "-"),
                r.get("longest_script_us", "-"),
            ]
            for r in data["rows"]
        ]
        out.append(f"## Admin changelist ({backend} backend)\n")
        out.append(
            _table(
                [
                    "policies",
                    "rows shown",
                    "ms",
                    "SQL queries",
                    "Redis round trips",
                    "commands",
                    "most keys in one script",
                    "longest script (µs, SLOWLOG)",
                ],
                rows,
            )
        )
    return out


def _profile(results: dict[str, Any]) -> list[str]:
    files = results.get("profile")
    if not files:
        return []
    listed = "\n".join(f"- {what}: [`{name}`]({name})" for what, name in files.items())
    return [f"## Profiles of our sync ok and open paths\n\n{listed}\n"]
