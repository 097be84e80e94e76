"""PNG charts of a run (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.peers import OURS

COLORS = {
    OURS: "#1b7837",
    "pybreaker": "#2166ac",
    "circuitbreaker": "#b2182b",
    "purgatory": "#8073ac",
    "aiobreaker": "#e08214",
}
LABELS = {OURS: "django-resilience"}


def draw(results: dict[str, Any], out_dir: Path) -> list[str]:
    """Every chart the run has data for; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    written = []
    for name, painter in (
        ("inprocess.png", _inprocess),
        ("redis.png", _redis),
        ("scale.png", _scale),
        ("stampede.png", _stampede),
        ("propagation_admin.png", _propagation_admin),
    ):
        figure = painter(results)
        if figure is not None:
            figure.savefig(out_dir / name, dpi=110, bbox_inches="tight")
            written.append(name)
            import matplotlib.pyplot as plt

            plt.close(figure)
    return written


def _label(lib: str) -> str:
    return LABELS.get(lib, lib)


def _bars(ax: Any, groups: list[str], series: dict[str, list[tuple[float, float, float]]]) -> None:
    """Grouped bars; each value is (median, p25, p75), drawn with its spread as an error bar."""
    width = 0.8 / max(1, len(series))
    for i, (lib, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        med = [v[0] for v in values]
        err = [[max(0, v[0] - v[1]) for v in values], [max(0, v[2] - v[0]) for v in values]]
        ax.bar(xs, med, width, yerr=err, capsize=2, label=_label(lib), color=COLORS.get(lib))
    ax.set_xticks(range(len(groups)), groups)
    ax.grid(axis="y", alpha=0.3)


def _inprocess(results: dict[str, Any]) -> Any:
    data = results.get("inprocess")
    if not data:
        return None
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(data), figsize=(6 * len(data), 4), squeeze=False)
    for ax, (flavour, d) in zip(axes[0], data.items(), strict=True):
        paths = list(d["paths"])
        series = {
            lib: [
                tuple(d["paths"][p][lib]["overhead_ns"][k] / 1000 for k in ("median", "p25", "p75"))
                for p in paths
            ]
            for lib in d["libs"]
        }
        _bars(ax, [f"{p} path" for p in paths], series)
        ax.set_title(f"Overhead per protected no-op call, {flavour}")
        ax.set_ylabel("µs above a bare call (lower is better)")
        ax.legend(fontsize=8)
    return figure


def _redis(results: dict[str, Any]) -> Any:
    data = results.get("redis")
    if not data:
        return None
    import matplotlib.pyplot as plt

    ok = {lib: r for lib, r in data["results"].items() if "error" not in r}
    if not ok:
        return None
    paths = ["ok", "failure", "open", "trip"]
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4))
    for ax, key, title in (
        (left, "round_trips", "Round trips per call"),
        (middle, "commands", "Commands Redis executes per call\n(inside Lua scripts too)"),
    ):
        series = {lib: [(r[p][key],) * 3 for p in paths] for lib, r in ok.items()}
        _bars(ax, paths, series)
        ax.set_title(title)
        ax.legend(fontsize=8)
    series = {
        lib: [tuple(r[p]["per_ping"][k] for k in ("median", "p25", "p75")) for p in paths]
        for lib, r in ok.items()
    }
    _bars(right, paths, series)
    right.set_title("Time per call, in PINGs on the same client")
    right.legend(fontsize=8)
    return figure


def _scale(results: dict[str, Any]) -> Any:
    tp, circuits = results.get("throughput"), results.get("circuits") or {}
    if not tp and not circuits:
        return None
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for ax, upstream in zip(axes[0], tp["upstreams"] if tp else [], strict=False):
        rows = [r for r in tp["rows"] if r["upstream"] == upstream]
        for lib, threads in sorted({(r["lib"], r["threads"]) for r in rows}):
            mine = sorted(
                (r["processes"], r["calls_per_second"])
                for r in rows
                if (r["lib"], r["threads"]) == (lib, threads)
            )
            ax.plot(
                [p for p, _ in mine],
                [c for _, c in mine],
                marker="o",
                linestyle="-" if threads == 1 else "--",
                color=COLORS.get(lib),
                label=f"{_label(lib)}, {threads} thread(s)/process",
            )
        ax.set_title(f"One circuit shared through Redis, upstream {upstream}")
        ax.set_xlabel("processes")
        ax.set_ylabel("calls per second, all processes (higher is better)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax, kind, xlabel, xkey in (
        (axes[1][0], "circuits", "circuits called round-robin (log)", "circuits"),
        (axes[1][1], "windows", "failure-rate window, seconds (log)", "window_seconds"),
    ):
        _cost_panel(ax, circuits, kind, xkey)
        ax.set_xlabel(xlabel)
        ax.set_title(f"Ours: ok-path cost vs {kind} (flat is good)")
    figure.tight_layout()
    return figure


def _cost_panel(ax: Any, circuits: dict[str, Any], kind: str, xkey: str) -> None:
    """Memory overhead (µs, left axis) and Redis cost (PINGs, right axis) on one log x axis."""
    handles = []
    if "memory" in circuits:
        rows = circuits["memory"][kind]
        handles += ax.plot(
            [r[xkey] for r in rows],
            [r["overhead_ns"]["median"] / 1000 for r in rows],
            marker="o",
            color=COLORS[OURS],
            label="memory: overhead µs (left)",
        )
        ax.set_ylabel("µs above a bare call")
        ax.set_ylim(bottom=0)
    if "redis" in circuits:
        right = ax.twinx()
        rows = circuits["redis"][kind]
        handles += right.plot(
            [r[xkey] for r in rows],
            [r["per_ping"]["median"] for r in rows],
            marker="s",
            linestyle="--",
            color="#762a83",
            label="Redis: time in PINGs (right)",
        )
        right.set_ylabel("time per call in PINGs")
        right.set_ylim(bottom=0)
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="lower right")


def _stampede(results: dict[str, Any]) -> Any:
    data = results.get("stampede")
    if not data:
        return None
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    procs = sorted({r["processes"] for r in data["rows"]})
    for ax, key, title in (
        (left, "opened", "Open transitions (target: exactly 1)"),
        (right, "upstream_calls", "Calls that reached the failing upstream"),
    ):
        series = {}
        for lib in data["libs"]:
            values = []
            for p in procs:
                v = sorted(r[key] for r in data["rows"] if r["lib"] == lib and r["processes"] == p)
                values.append((v[len(v) // 2], v[0], v[-1]))
            series[lib] = values
        _bars(ax, [f"{p} processes" for p in procs], series)
        ax.set_title(f"{title}\nmedian, min-max of {data['rounds']} rounds")
        if key == "opened":
            ax.axhline(1, color="red", linestyle=":", label="target")
        else:
            ax.axhline(data["threshold"], color="gray", linestyle=":", label="threshold")
        ax.legend(fontsize=8)
    return figure


def _propagation_admin(results: dict[str, Any]) -> Any:
    prop, admin = results.get("propagation"), results.get("admin") or {}
    if not prop and not admin:
        return None
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if prop:
        actions = list(dict.fromkeys(r["action"] for r in prop["rows"]))
        configs = sorted({(r["policies"], r["workers"]) for r in prop["rows"]})
        series = {}
        for policies, count in configs:
            values = []
            for action in actions:
                v = sorted(
                    r["seconds"]
                    for r in prop["rows"]
                    if (r["policies"], r["workers"], r["action"]) == (policies, count, action)
                    and r["seconds"] is not None  # never applied: no bar (the table says so)
                )
                values.append((v[len(v) // 2], v[0], v[-1]) if v else (float("nan"),) * 3)
            series[f"{count} workers, {policies} policies in table"] = values
        _bars(left, actions, series)
        left.axhline(prop["refresh_seconds"], color="red", linestyle=":", label="target")
        left.set_title("Seconds until every worker applied an action")
        left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    for backend, d in admin.items():
        xs = [r["policies"] for r in d["rows"]]
        right.plot(xs, [r["ms"]["median"] for r in d["rows"]], marker="o", label=f"{backend}: ms")
        right.plot(
            xs, [r["sql_queries"] for r in d["rows"]], marker="s", linestyle="--",
            label=f"{backend}: SQL queries",
        )  # fmt: skip
    if admin:
        right.set_xscale("log")
        right.set_xlabel("policies (page shows at most 100)")
        right.set_title("Admin changelist: render time and SQL queries")
        right.grid(alpha=0.3)
        right.legend(fontsize=8)
    return figure
