"""``metrics/``: every circuit's Prometheus metric families, through prometheus-client."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError
from django.db.models import Count
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from resilience import stats
from resilience.backends import get_backend
from resilience.conf import settings as conf
from resilience.metrics import STATES, Overview, backend_log, database_log, overview
from resilience.models import CircuitEvent

logger = logging.getLogger("resilience")

# The label of the circuits past METRICS["MAX_CIRCUITS"], summed; no circuit can be named so
# (a circuit name starts with a letter or a digit).
OTHER = "_other"
# How the HTTP adapters name their per-host circuits: these give way to the named circuits
# under the cap (there can be many of them, made up by the URLs a site is asked to call).
PER_HOST_PREFIX = "http:"


@dataclass(frozen=True)
class Spec:
    """One metric family; counters are named without ``_total`` (prometheus-client adds it)."""

    name: str
    kind: str  # "gauge" | "counter" | "histogram"
    help: str
    labels: tuple[str, ...] = ("circuit",)


GAUGE, COUNTER, HISTOGRAM = "gauge", "counter", "histogram"
SCALAR: dict[str, type[GaugeMetricFamily] | type[CounterMetricFamily]] = {
    GAUGE: GaugeMetricFamily,
    COUNTER: CounterMetricFamily,
}
SPECS = {
    spec.name: spec
    for spec in (
        # The shared state (the backend; with Redis the same from every process).
        Spec(
            "resilience_circuit_state",
            GAUGE,
            "1 for the circuit's current state, 0 for the others.",
            ("circuit", "state"),
        ),
        Spec(
            "resilience_circuit_consecutive_failures",
            GAUGE,
            "Failures in a row counted by the circuit.",
        ),
        Spec("resilience_circuit_critical", GAUGE, "1 if the policy is critical."),
        Spec(
            "resilience_circuit_in_flight",
            GAUGE,
            "Calls running now (all processes sharing the backend); circuits with a concurrency "
            "cap or a call deadline only.",
        ),
        Spec(
            "resilience_circuit_max_concurrent_calls",
            GAUGE,
            "The circuit's bulkhead cap (max_concurrent_calls); circuits with a cap only.",
        ),
        # This process's counters (resilience.stats).
        Spec(
            "resilience_calls",
            COUNTER,
            "Protected calls that finished in this process, by outcome.",
            ("circuit", "outcome"),
        ),
        Spec(
            "resilience_rejections",
            COUNTER,
            "Calls rejected in this process because the circuit was open (bulkhead refusals "
            "are counted in resilience_bulkhead_rejections).",
        ),
        Spec(
            "resilience_bulkhead_rejections",
            COUNTER,
            "Calls refused in this process because the circuit's bulkhead was full "
            "(max_concurrent_calls); not counted in resilience_rejections.",
        ),
        Spec(
            "resilience_bulkhead_over_cap",
            COUNTER,
            "Monitor-mode calls in this process that the bulkhead would have refused (they ran).",
        ),
        Spec(
            "resilience_overdue_calls",
            COUNTER,
            "Calls in this process judged failed while still running (past slow_call_ms or "
            "call_timeout_ms); also counted as failures in resilience_calls.",
        ),
        # Every process sharing the backend (Backend.totals): any one scrape gives the sum.
        Spec(
            "resilience_cluster_calls",
            COUNTER,
            "Protected calls that finished in every process sharing the backend, by outcome.",
            ("circuit", "outcome"),
        ),
        Spec(
            "resilience_cluster_slow_calls",
            COUNTER,
            "Calls slower than slow_call_ms (success or failure), every process.",
        ),
        Spec(
            "resilience_cluster_rejections",
            COUNTER,
            "Calls rejected by an open or forced-open circuit, every process.",
        ),
        Spec(
            "resilience_cluster_bulkhead_rejections",
            COUNTER,
            "Calls refused by a full bulkhead, every process.",
        ),
        Spec(
            "resilience_cluster_overdue_calls",
            COUNTER,
            "Calls judged failed while still running (their deadline passed), every process; "
            "also counted as failures in resilience_cluster_calls.",
        ),
        Spec(
            "resilience_cluster_call_duration_seconds",
            HISTOGRAM,
            "Duration of the protected calls, every process.",
        ),
        # The database and this process's view of the backend.
        Spec(
            "resilience_transitions",
            COUNTER,
            "State changes and manual actions recorded as events (all processes).",
            ("circuit", "kind"),
        ),
        Spec(
            "resilience_backend_degraded",
            GAUGE,
            "1 while the state backend is unreachable from this process.",
            (),
        ),
        Spec(
            "resilience_backend_errors",
            COUNTER,
            "Backend failures that switched this process to the ON_BACKEND_ERROR behaviour.",
            (),
        ),
        Spec(
            "resilience_metrics_aggregated_circuits",
            GAUGE,
            'Circuits past RESILIENCE["METRICS"]["MAX_CIRCUITS"]: their series are summed '
            'under circuit="_other".',
            (),
        ),
    )
}

# Per-process isolation counters: resilience.stats outcome -> family.
ISOLATION = (
    ("bulkhead_rejected", "resilience_bulkhead_rejections"),
    ("over_cap", "resilience_bulkhead_over_cap"),
    ("overdue", "resilience_overdue_calls"),
)
# Backend.totals() key -> cluster family.
CLUSTER = (
    ("slow", "resilience_cluster_slow_calls"),
    ("rejected_open", "resilience_cluster_rejections"),
    ("rejected_bulkhead", "resilience_cluster_bulkhead_rejections"),
    ("timeouts", "resilience_cluster_overdue_calls"),
)


class Series:
    """Samples by family and labels. A circuit not in ``named`` is counted under ``_other``:
    every value of the circuits past the cap is summed there (a state gauge then says how many
    of them are in that state)."""

    def __init__(self, named: set[str]) -> None:
        self.named = named
        self.values: dict[str, dict[tuple[str, ...], float]] = defaultdict(dict)
        # circuit label -> (latency bounds in ms, per-bin counts, sum in ms)
        self.latency: dict[str, tuple[list[float], list[int], float]] = {}

    def label(self, circuit: str) -> str:
        return circuit if circuit in self.named else OTHER

    def add(self, family: str, value: float, circuit: str | None = None, *labels: str) -> None:
        key = (*((self.label(circuit),) if circuit is not None else ()), *labels)
        samples = self.values[family]
        samples[key] = samples.get(key, 0.0) + float(value)

    def add_latency(self, circuit: str, latency: dict[str, Any]) -> None:
        label = self.label(circuit)
        bounds, counts = list(latency["bounds_ms"]), list(latency["counts"])
        sum_ms = float(latency["sum_ms"])
        if label in self.latency:
            _, before, before_sum = self.latency[label]
            counts = [a + b for a, b in zip(before, counts, strict=True)]
            sum_ms += before_sum
        self.latency[label] = (bounds, counts, sum_ms)

    def families(self) -> list[Metric]:
        found: list[Metric] = []
        for spec in SPECS.values():
            if spec.kind == HISTOGRAM:
                histogram = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
                for label, (bounds, counts, sum_ms) in sorted(self.latency.items()):
                    histogram.add_metric([label], _buckets(bounds, counts), sum_ms / 1000)
                found.append(histogram)
                continue
            family = SCALAR[spec.kind](spec.name, spec.help, labels=spec.labels)
            for labels, value in sorted(self.values[spec.name].items()):
                family.add_metric(list(labels), value)
            found.append(family)
        return found


def _buckets(bounds: list[float], counts: list[int]) -> list[tuple[str, float]]:
    """Prometheus buckets (``le`` in seconds, cumulative) from per-bin counts in ms."""
    buckets, total = [], 0
    for bound, count in zip([*bounds, float("inf")], counts, strict=True):
        total += count
        buckets.append((floatToGoString(bound / 1000), float(total)))
    return buckets


def named_circuits(view: Overview, seen: Iterable[str], cap: int) -> set[str]:
    """The circuits that get series of their own, at most ``cap`` of them: those with a policy
    row first (per-host ``http:`` circuits after the others, each kind oldest first), then
    circuits without a row (used in this process, or with events only) by name."""
    names = set(view.circuits).union(seen)
    rows = view.row_ids

    def rank(name: str) -> tuple[bool, bool, int, str]:
        return name not in rows, name.startswith(PER_HOST_PREFIX), rows.get(name, 0), name

    return set(sorted(names, key=rank)[:cap])


def _transition_counts() -> list[tuple[str, str, int]]:
    """``(circuit, kind, events)`` from the database; empty (logged) when it cannot be read."""
    rows = CircuitEvent.objects.values_list("circuit", "kind").annotate(n=Count("id"))
    try:
        return list(rows.order_by("circuit", "kind"))
    except DatabaseError as exc:
        database_log.log(
            logging.WARNING, "resilience: cannot count events for metrics: %s", type(exc).__name__
        )
        return []


def _totals(names: list[str]) -> dict[str, dict[str, Any]]:
    """``Backend.totals``, after sending this process's latest counts (the other processes'
    are at most one history feed interval old); empty (logged) when the backend cannot answer,
    and at once during an outage the overview has just met (``health()``: no round trip)."""
    try:
        backend = get_backend()
        if backend.health().get("degraded"):  # a known outage: no second wait for a timeout
            return {}
        backend.flush()
        return backend.totals(names)
    except Exception as exc:  # a scrape answers without the cluster series, never 500
        backend_log.log(
            logging.WARNING,
            "resilience: backend unavailable for the cluster metrics: %s",
            type(exc).__name__,
        )
        return {}


def _add_state(series: Series, view: Overview) -> None:
    for name, circuit in view.circuits.items():
        for state in STATES:
            series.add("resilience_circuit_state", circuit["state"] == state, name, state)
        series.add("resilience_circuit_consecutive_failures", circuit["consecutive_failures"], name)
        series.add("resilience_circuit_critical", circuit["critical"], name)
        if circuit["in_flight"] is not None:
            series.add("resilience_circuit_in_flight", circuit["in_flight"], name)
        if circuit["max_concurrent_calls"]:
            cap = circuit["max_concurrent_calls"]
            series.add("resilience_circuit_max_concurrent_calls", cap, name)


def _add_process(series: Series, view: Overview, process: dict[str, dict[str, int]]) -> None:
    # The isolation counters only move for circuits with a cap or a deadline: a series (0 from
    # the start, so rate() sees the first increment) for those, and for any count not 0.
    tracked = {name for name, c in view.circuits.items() if c["in_flight"] is not None
               or c["max_concurrent_calls"]}  # fmt: skip
    for name, counts in process.items():
        for outcome in ("success", "failure", "ignored"):
            series.add("resilience_calls", counts[outcome], name, outcome)
        series.add("resilience_rejections", counts["rejected"], name)
        for outcome, family in ISOLATION:
            if name in tracked or counts[outcome]:
                series.add(family, counts[outcome], name)


def _add_cluster(series: Series, totals: dict[str, dict[str, Any]]) -> None:
    for name, total in totals.items():
        failures = total["failures"]
        series.add("resilience_cluster_calls", max(0, total["calls"] - failures), name, "success")
        series.add("resilience_cluster_calls", failures, name, "failure")
        for key, family in CLUSTER:
            series.add(family, total[key], name)
        series.add_latency(name, total["latency"])


def families(view: Overview) -> list[Metric]:
    """Every family, from the overview, this process's counters, ``Backend.totals`` (one
    round trip for all circuits) and one SQL query over the events."""
    process = stats.snapshot()
    transitions = _transition_counts()
    totals = _totals(sorted(set(view.circuits).union(process)))
    seen = {*process, *(circuit for circuit, _, _ in transitions)}
    every = set(view.circuits).union(seen)
    named = named_circuits(view, seen, conf.METRICS["MAX_CIRCUITS"])
    series = Series(named)
    _add_state(series, view)
    _add_process(series, view, process)
    _add_cluster(series, totals)
    for circuit, kind, count in transitions:
        series.add("resilience_transitions", count, circuit, kind)
    series.add("resilience_backend_degraded", bool(view.backend.get("degraded")))
    series.add("resilience_backend_errors", view.backend.get("outages", 0))
    series.add("resilience_metrics_aggregated_circuits", len(every - named))
    return series.families()


class ResilienceCollector(Collector):
    """Every resilience metric family, read afresh on each ``collect()``.

    ``metrics/`` registers one in a private ``CollectorRegistry`` per scrape, so prometheus-
    client's default ``REGISTRY`` is never touched. To publish the families on an endpoint of
    your own instead: ``prometheus_client.REGISTRY.register(ResilienceCollector())``.
    """

    def collect(self) -> Iterator[Metric]:
        yield from families(overview())

    def describe(self) -> list[Metric]:
        """The families without samples: registering checks the names, reads nothing."""
        return Series(set()).families()


def exposition(accept: str = "") -> tuple[bytes, str]:
    """``(body, content_type)`` for a scrape whose ``Accept`` header is ``accept``: the
    Prometheus text format, or OpenMetrics when the scraper asks for it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResilienceCollector())
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
