"""After a run: every transition stored exactly once, every sent alert e-mailed exactly once."""

from __future__ import annotations

from collections import Counter
from typing import Any

from resilience import alerts
from resilience.models import AlertStatus, CircuitEvent
from tests.outages.load import Result
from tests.support.smtp import SMTPServer


def alerts_settings() -> dict[str, Any]:
    """``RESILIENCE["ALERTS"]`` for workers: every opening mailed at once (sync, no cooldown)."""
    return {"DELIVERY": "sync", "RECIPIENTS": ["oncall@example.com"], "COOLDOWN_SECONDS": 0}


def smtp_env(smtp: SMTPServer) -> dict[str, str]:
    """Worker environment for ``tests.support.procsettings`` to mail through ``smtp``."""
    return {"RESILIENCE_TEST_SMTP_PORT": str(smtp.port)}


def transition_problems(result: Result) -> list[str]:
    """Each transition handed to a caller has exactly one ``CircuitEvent``, and vice versa."""
    problems = []
    emitted = [t[0] for t in result.transitions()]
    duplicated = [i for i, n in Counter(emitted).items() if n > 1]
    if duplicated:
        problems.append(f"{len(duplicated)} transitions handed to two callers: {duplicated[:5]}")
    rows = CircuitEvent.objects.exclude(transition_id=None).values_list("transition_id", "kind")
    stored = {transition_id for transition_id, _ in rows}
    # A quiet open circuit is moved to half-open by whoever reads it or by events.drain()
    # (docs/operations.md, "circuits that move on their own"): no caller is handed that one.
    moved = {transition_id for transition_id, kind in rows if kind == "half_opened"}
    lost = set(emitted) - stored
    if lost:
        problems.append(f"{len(lost)} transitions have no CircuitEvent: {sorted(lost)[:5]}")
    extra = stored - set(emitted) - moved
    if extra:
        problems.append(f"{len(extra)} events match no transition: {sorted(extra)[:5]}")
    return problems


def alert_problems(smtp: SMTPServer, quiet: float = 1.0) -> list[str]:
    """Nothing pending or failed; each alert marked sent arrived once; nothing else arrived."""
    events = list(CircuitEvent.objects.exclude(transition_id=None))
    problems = []
    statuses = Counter(e.alert_status for e in events)
    for status in (AlertStatus.PENDING, AlertStatus.FAILED):
        if statuses[status]:
            problems.append(f"{statuses[status]} alerts still {status}")
    sent = {alerts.message_id(e) for e in events if e.alert_status == AlertStatus.SENT}
    arrived = Counter(m["Message-ID"] for m in smtp.settle(quiet=quiet, timeout=60))
    twice = [i for i, n in arrived.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} alerts e-mailed more than once: {twice[:3]}")
    if sent - set(arrived):
        problems.append(f"{len(sent - set(arrived))} alerts marked sent never arrived")
    if set(arrived) - sent:
        problems.append(f"{len(set(arrived) - sent)} e-mails for events not marked sent")
    return problems
