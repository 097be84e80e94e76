"""OpenTelemetry (the ``otel`` extra): protected calls and transitions as events on the span."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from resilience.conf import settings as conf

if TYPE_CHECKING:
    from resilience.engine_types import Policy, Ticket, Transition

# Decided once, at import: without opentelemetry-api nothing here is ever called (routes are
# built without these wrappers), so a site without the extra pays nothing per call.
try:
    from opentelemetry.trace import Span, get_current_span
except ImportError:
    get_current_span = None  # type: ignore[assignment]

CALL_EVENT = "resilience.call"
TRANSITION_EVENT = "resilience.transition"


def enabled() -> bool:
    """Whether a route built now traces its calls: opentelemetry-api is installed and
    ``RESILIENCE["TRACING"]`` is on (read when a route is built, never per call)."""
    return get_current_span is not None and bool(conf.TRACING)


def _call(span: Span, circuit: str, outcome: str, state: str) -> None:
    span.add_event(
        CALL_EVENT,
        {"resilience.circuit": circuit, "resilience.outcome": outcome, "resilience.state": state},
    )


def _transitions(span: Span, transitions: Iterable[Transition]) -> None:
    for t in transitions:
        span.add_event(
            TRANSITION_EVENT,
            {
                "resilience.circuit": t.circuit,
                "resilience.transition": t.kind,
                "resilience.from_state": t.from_state,
                "resilience.to_state": t.to_state,
                "resilience.failure_count": t.failure_count,
            },
        )


def traced_acquire(acquire: Callable[[Policy], Ticket], circuit: str) -> Callable[[Policy], Ticket]:
    """``acquire`` that also puts a refusal (outcome ``rejected``, state ``open``,
    ``half_open``, ``forced_open`` or ``bulkhead_full``) and the transitions it made
    (``half_opened``) on the current span."""

    def acquire_traced(policy: Policy) -> Ticket:
        ticket = acquire(policy)
        # An admitted call's event comes from record: most calls look for the span once.
        if ticket.transitions or not ticket.admitted:
            span = get_current_span()
            if span.is_recording():
                _transitions(span, ticket.transitions)
                if not ticket.admitted:
                    _call(span, circuit, "rejected", ticket.state)
        return ticket

    return acquire_traced


def traced_record(
    record: Callable[[Ticket, Policy, bool, int], list[Transition]], circuit: str
) -> Callable[[Ticket, Policy, bool, int], list[Transition]]:
    """``record`` that also puts the call's outcome (``success`` or ``failure``, and the
    circuit's state after it) and the transitions it made on the current span."""

    def record_traced(ticket: Ticket, policy: Policy, ok: bool, duration_ms: int) -> list:
        transitions = record(ticket, policy, ok, duration_ms)
        span = get_current_span()
        if span.is_recording():
            state = transitions[-1].to_state if transitions else ticket.state
            _call(span, circuit, "success" if ok else "failure", state)
            _transitions(span, transitions)
        return transitions

    return record_traced
