"""Circuit overview for the health endpoint and Prometheus text exposition for ``metrics/``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError
from django.db.models import Count

from resilience import stats
from resilience.backends import get_backend
from resilience.engine_types import CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, OPEN
from resilience.logs import ThrottledLog
from resilience.models import BreakerPolicy, CircuitEvent
from resilience.policies import ResolvedPolicy

logger = logging.getLogger("resilience")
# The health endpoint is probed every few seconds: one WARNING a minute per kind of failure.
database_log = ThrottledLog(logger, 60.0)
backend_log = ThrottledLog(logger, 60.0)

STATES = (CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, DISABLED)
DOWN_STATES = frozenset({OPEN, HALF_OPEN, FORCED_OPEN})
PLAIN_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Keys of ``Backend.health()`` that are safe to show: never locations, URLs or error texts.
PUBLIC_BACKEND_KEYS = ("backend", "degraded", "degraded_since", "outages")


@dataclass
class Overview:
    """Every policy's circuit (one SQL query, one backend round trip) and the backend's health."""

    circuits: dict[str, dict[str, Any]] = field(default_factory=dict)
    backend: dict[str, Any] = field(default_factory=dict)
    database: bool = True  # False: the policies could not be read

    @property
    def critical_down(self) -> list[str]:
        return [
            name
            for name, circuit in self.circuits.items()
            if circuit["critical"] and circuit["state"] in DOWN_STATES
        ]

    @property
    def healthy(self) -> bool:
        return self.database and not self.backend.get("degraded") and not self.critical_down


def overview() -> Overview:
    """Collect the overview; a failing backend or database reads as degraded, it never raises."""
    database = True
    try:
        rows = list(BreakerPolicy.objects.all())
    except DatabaseError as exc:
        database_log.log(
            logging.WARNING,
            "resilience: cannot read policies for health/metrics: %s",
            type(exc).__name__,
        )
        rows, database = [], False
    resolved = {row.name: ResolvedPolicy.from_row(row) for row in rows}
    backend = get_backend()
    try:
        # Circuits past their open time move to half-open here, even if nobody calls them.
        snapshots = backend.snapshot_current({name: r.policy for name, r in resolved.items()})
        health = backend.health()  # after the round trip, so it reflects an outage it found
    except Exception as exc:  # the health endpoint must answer "degraded", not 500
        backend_log.log(
            logging.WARNING,
            "resilience: backend unavailable for health/metrics: %s",
            type(exc).__name__,
        )
        health, snapshots = {"backend": type(backend).__name__, "degraded": True}, {}
    result = Overview(
        backend={k: health[k] for k in PUBLIC_BACKEND_KEYS if k in health},
        database=database,
    )
    for name, r in resolved.items():
        snap = snapshots.get(name, {})
        state = r.mode if r.mode in (FORCED_OPEN, DISABLED) else snap.get("state", "unknown")
        result.circuits[name] = {
            "state": state,
            "mode": r.mode,
            "critical": r.critical,
            "consecutive_failures": snap.get("consecutive_failures", 0),
            "failure_rate": snap.get("failure_rate"),
            "calls_in_window": snap.get("calls_in_window", 0),
            "retry_after": snap.get("retry_after", 0.0),
            "trips": snap.get("trips", 0),
            # None: not counted (no cap and no call deadline) or the backend is unreachable.
            "in_flight": snap.get("in_flight"),
            "max_concurrent_calls": r.policy.max_concurrent_calls,
        }
    return result


# --- Prometheus ---------------------------------------------------------------------------------


@dataclass
class Family:
    """One metric family; counters are named without ``_total`` (added on exposition)."""

    name: str
    kind: str  # "gauge" | "counter"
    help: str
    labels: tuple[str, ...]
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)


def families(view: Overview) -> list[Family]:
    state = Family(
        "resilience_circuit_state",
        "gauge",
        "1 for the circuit's current state, 0 for the others.",
        ("circuit", "state"),
    )
    failures = Family(
        "resilience_circuit_consecutive_failures",
        "gauge",
        "Failures in a row counted by the circuit.",
        ("circuit",),
    )
    critical = Family(
        "resilience_circuit_critical", "gauge", "1 if the policy is critical.", ("circuit",)
    )
    in_flight = Family(
        "resilience_circuit_in_flight",
        "gauge",
        "Calls running now (all processes sharing the backend); circuits with a concurrency "
        "cap or a call deadline only.",
        ("circuit",),
    )
    cap = Family(
        "resilience_circuit_max_concurrent_calls",
        "gauge",
        "The circuit's bulkhead cap (max_concurrent_calls); circuits with a cap only.",
        ("circuit",),
    )
    for name, circuit in sorted(view.circuits.items()):
        state.samples += [((name, s), float(circuit["state"] == s)) for s in STATES]
        failures.samples.append(((name,), float(circuit["consecutive_failures"])))
        critical.samples.append(((name,), float(circuit["critical"])))
        if circuit["in_flight"] is not None:
            in_flight.samples.append(((name,), float(circuit["in_flight"])))
        if circuit["max_concurrent_calls"]:
            cap.samples.append(((name,), float(circuit["max_concurrent_calls"])))

    calls = Family(
        "resilience_calls",
        "counter",
        "Protected calls that finished in this process, by outcome.",
        ("circuit", "outcome"),
    )
    rejections = Family(
        "resilience_rejections",
        "counter",
        "Calls rejected in this process because the circuit was open (bulkhead refusals are "
        "counted in resilience_bulkhead_rejections).",
        ("circuit",),
    )
    bulkhead = Family(
        "resilience_bulkhead_rejections",
        "counter",
        "Calls refused in this process because the circuit's bulkhead was full "
        "(max_concurrent_calls); not counted in resilience_rejections.",
        ("circuit",),
    )
    over_cap = Family(
        "resilience_bulkhead_over_cap",
        "counter",
        "Monitor-mode calls in this process that the bulkhead would have refused (they ran).",
        ("circuit",),
    )
    overdue = Family(
        "resilience_overdue_calls",
        "counter",
        "Calls in this process judged failed while still running (past slow_call_ms or "
        "call_timeout_ms); also counted as failures in resilience_calls.",
        ("circuit",),
    )
    isolation = ((bulkhead, "bulkhead_rejected"), (over_cap, "over_cap"), (overdue, "overdue"))
    # The isolation counters only move for circuits with a cap or a deadline: a series (0 from
    # the start, so rate() sees the first increment) for those, and for any count not 0.
    tracked = {name for name, c in view.circuits.items() if c["in_flight"] is not None
               or c["max_concurrent_calls"]}  # fmt: skip
    for name, counts in sorted(stats.snapshot().items()):
        calls.samples += [
            ((name, outcome), float(counts[outcome]))
            for outcome in ("success", "failure", "ignored")
        ]
        rejections.samples.append(((name,), float(counts["rejected"])))
        for family, outcome in isolation:
            if name in tracked or counts[outcome]:
                family.samples.append(((name,), float(counts[outcome])))

    transitions = Family(
        "resilience_transitions",
        "counter",
        "State changes and manual actions recorded as events (all processes).",
        ("circuit", "kind"),
    )
    rows = CircuitEvent.objects.values_list("circuit", "kind").annotate(n=Count("id"))
    transitions.samples = [((c, k), float(n)) for c, k, n in rows.order_by("circuit", "kind")]

    degraded = Family(
        "resilience_backend_degraded",
        "gauge",
        "1 while the state backend is unreachable from this process.",
        (),
        [((), float(bool(view.backend.get("degraded"))))],
    )
    errors = Family(
        "resilience_backend_errors",
        "counter",
        "Backend failures that switched this process to the ON_BACKEND_ERROR behaviour.",
        (),
        [((), float(view.backend.get("outages", 0)))],
    )
    return [
        state,
        failures,
        critical,
        in_flight,
        cap,
        calls,
        rejections,
        bulkhead,
        over_cap,
        overdue,
        transitions,
        degraded,
        errors,
    ]


def exposition(view: Overview) -> tuple[bytes, str]:
    """``(body, content_type)``: via prometheus-client when installed, plain text otherwise."""
    found = families(view)
    try:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.exposition import CONTENT_TYPE_LATEST
    except ImportError:
        return _plain_text(found).encode(), PLAIN_CONTENT_TYPE
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(found))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Collector:
    def __init__(self, found: list[Family]) -> None:
        self.found = found

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for family in self.found:
            cls = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            metric = cls(family.name, family.help, labels=family.labels)
            for labels, value in family.samples:
                metric.add_metric(list(labels), value)
            yield metric


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _plain_text(found: list[Family]) -> str:
    """The Prometheus text format 0.0.4, as prometheus-client writes it."""
    lines = []
    for family in found:
        name = f"{family.name}_total" if family.kind == "counter" else family.name
        lines.append(f"# HELP {name} {_escape(family.help)}")
        lines.append(f"# TYPE {name} {family.kind}")
        for labels, number in family.samples:
            pairs = ",".join(
                f'{k}="{_escape(v)}"' for k, v in zip(family.labels, labels, strict=True)
            )
            lines.append(f"{name}{{{pairs}}} {number!r}" if pairs else f"{name} {number!r}")
    return "\n".join(lines) + "\n"
