"""``python -m benchmarks.hanging``: the hanging-upstream scenario for none, pybreaker, ours
(default policy) and ours (recommended policy); writes ``hanging.json`` and ``hanging.svg``.

The scenario is the one of tests/isolation/test_hanging_upstream.py (the machinery is shared:
tests/support/hangscenario.py): gunicorn with 4 sync workers, one view calling an upstream
that hangs (60 s, past any timeout) through ``requests`` with ``timeout=30``, 20 clients on
that view, an unrelated page probed every 0.5 s with a 2 s client timeout, state in a private
Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # appended: never shadow the code being measured
    sys.path.append(str(ROOT))

# The peer's trip rule: its defaults (open after 5 failures, for 60 s), shared through Redis.
PYBREAKER = {"fail_max": 5, "reset_timeout": 60}
VARIANTS = ("none", "pybreaker", "ours-default", "ours-recommended")
COLORS = {"ok": "#2e9e44", "failed": "#d9412b"}


def _setup(state_dir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.support.hangsite.settings"
    os.environ["RESILIENCE_TEST_DB_NAME"] = str(state_dir / "hang.sqlite3")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _variant(name: str, redis_url: str, upstream: Any, seconds: float, log: Path) -> dict:
    """One run of the scenario with ``name``'s protection, on a fresh Redis database."""
    import redis

    from resilience.models import BreakerPolicy, CircuitEvent
    from tests.support import hangscenario
    from tests.support.hangscenario import CIRCUIT

    BreakerPolicy.objects.all().delete()
    CircuitEvent.objects.all().delete()
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    protection = {"none": "none", "pybreaker": "pybreaker"}.get(name, "ours")
    if name == "ours-recommended":
        BreakerPolicy.objects.create(name=CIRCUIT, alert_on_open=False, **hangscenario.RECOMMENDED)
    policy = hangscenario.RECOMMENDED if name == "ours-recommended" else None
    db_name = os.environ["RESILIENCE_TEST_DB_NAME"]
    env = hangscenario.site_env(db_name, redis_url, upstream, protection, policy)
    env["HANG_PYBREAKER"] = json.dumps({**PYBREAKER, "redis_url": redis_url})
    state_key = f"{CIRCUIT}:pybreaker:state"  # pybreaker: "<namespace>:pybreaker:<key>"

    def pybreaker_open() -> bool:
        return client.get(state_key) == b"open"

    with hangscenario.Gunicorn(env, log) as site:
        site.warm("/quote/")
        outcome = hangscenario.run(
            site, upstream, seconds, is_open=pybreaker_open if name == "pybreaker" else None
        )
        if protection == "ours":
            deadline = time.monotonic() + 10
            while outcome.opened_at is None and time.monotonic() < deadline:
                event = (
                    CircuitEvent.objects.filter(circuit=CIRCUIT, kind="opened")
                    .order_by("created_at")
                    .first()
                )
                if event is not None:
                    outcome.opened_at = event.created_at.timestamp()
                time.sleep(0.1)
        upstream.heal()
    client.close()
    start = outcome.hang_started
    return {
        **outcome.summary(),
        "policy": {
            "none": None,
            "pybreaker": PYBREAKER,
            "ours-default": "default",
            "ours-recommended": hangscenario.RECOMMENDED,
        }[name],
        "timeline": sorted([round(at - start, 2), o == "ok"] for at, o, _ in outcome.probes),
    }


def run(seconds: float, out: Path, variants: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
    from tests.support.redisproc import RedisProcess
    from tests.support.upstream import HangingUpstream

    state_dir = Path(tempfile.mkdtemp(prefix="resilience-hang-"))
    _setup(state_dir)
    results: dict[str, Any] = {"meta": _meta(seconds), "variants": {}}
    with RedisProcess() as server:
        for name in variants:
            print(f"hanging upstream: {name} ...", file=sys.stderr, flush=True)
            # A fresh upstream each time: requests held by the previous run are released.
            with HangingUpstream(hang_seconds=60) as upstream:
                results["variants"][name] = _variant(
                    name, server.url, upstream, seconds, state_dir / f"gunicorn-{name}.log"
                )
    out.mkdir(parents=True, exist_ok=True)
    (out / "hanging.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    (out / "hanging.svg").write_text(svg(results, seconds))
    return results


def _meta(seconds: float) -> dict[str, Any]:
    def out(*argv: str) -> str:
        try:
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        except OSError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    from importlib import metadata

    versions = {}
    for dist in ("Django", "redis", "requests", "gunicorn", "pybreaker"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": os.environ.get("BENCH_COMMIT") or out("git", "rev-parse", "--short", "HEAD"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "versions": versions,
        "scenario": {
            "seconds": seconds,
            "gunicorn_sync_workers": 4,
            "clients": 20,
            "upstream_hang_s": 60,
            "caller_timeout_s": 30,
            "probe_every_s": 0.5,
            "probe_timeout_s": 2.0,
            "pybreaker": PYBREAKER,
        },
    }


def svg(results: dict[str, Any], seconds: float) -> str:
    """One row per variant: every probe of the unrelated page (green answered, red not) over
    the window, the moment the breaker opened (black tick), the figures on the right."""
    left, width, row, top = 150, 600, 46, 40
    height = top + row * len(results["variants"]) + 44
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 330}" '
        f'height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">Unrelated page during a '
        f"hanging upstream (probes every 0.5 s, 2 s timeout)</text>",
        f'<text x="{left}" y="{height - 4}" fill="#555">green: answered · red: not answered '
        f"within 2 s · black tick: the circuit opened · hits: requests that reached the "
        f"upstream</text>",
    ]
    for i, (name, v) in enumerate(results["variants"].items()):
        y = top + i * row
        parts.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{name}</text>')
        parts.append(f'<rect x="{left}" y="{y + 4}" width="{width}" height="18" fill="#f2f2f2"/>')
        for at, ok in v["timeline"]:
            x = left + max(0.0, min(at, seconds)) / seconds * width
            color = COLORS["ok" if ok else "failed"]
            parts.append(f'<rect x="{x:.1f}" y="{y + 4}" width="4" height="18" fill="{color}"/>')
        if v["time_to_open_s"] is not None and v["time_to_open_s"] <= seconds:
            x = left + v["time_to_open_s"] / seconds * width
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + 26}" stroke="black" '
                f'stroke-width="2"/>'
            )
        opened = "never" if v["time_to_open_s"] is None else f"{v['time_to_open_s']:.1f} s"
        if name == "none":
            opened = "no breaker"
        parts.append(
            f'<text x="{left + width + 10}" y="{y + 17}">{v["availability"]:.0%} answered · '
            f"p99 {v['probe_p99_s']:.2f} s · open {opened} · {v['upstream_hits']} hits</text>"
        )
    axis = top + row * len(results["variants"])
    for t in range(0, int(seconds) + 1, 10):
        x = left + t / seconds * width
        parts.append(f'<text x="{x:.1f}" y="{axis + 12}" text-anchor="middle">{t} s</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hanging", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--only", nargs="+", choices=VARIANTS, help="run these variants only")
    args = parser.parse_args(argv)
    results = run(args.seconds, args.out, tuple(args.only or VARIANTS))
    for name, v in results["variants"].items():
        print(f"{name:18} {json.dumps({k: v[k] for k in v if k != 'timeline'})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
