"""The 24 h SVG timeline: which state covers which stretch, and well-formed, escaped markup."""

from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.utils import timezone

from resilience.admin import timeline
from resilience.models import CircuitEvent
from tests.factories import BreakerPolicyFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
SVG = "{http://www.w3.org/2000/svg}"


def event(minutes_ago, kind, to_state, circuit="pay"):
    return CircuitEvent.objects.create(
        circuit=circuit,
        kind=kind,
        to_state=to_state,
        created_at=NOW - timedelta(minutes=minutes_ago),
    )


def drawn(circuit="pay"):
    """``[(state, width%)]`` of the bar, parsed back from the SVG."""
    root = ElementTree.fromstring(str(timeline.render(circuit, now=NOW)))
    rects = root.findall(f"{SVG}rect")
    return [
        (rect.get("class").split()[1].removeprefix("rs-"), round(float(rect.get("width")) / 9.6))
        for rect in rects
    ]


def test_without_events_the_circuit_was_closed_all_day():
    assert drawn() == [("closed", 100)]


def test_changes_in_the_window():
    event(30 * 60, "opened", "open")  # before the window: the day starts open
    event(18 * 60, "half_opened", "half_open")
    event(18 * 60 - 1, "opened", "open")
    event(12 * 60, "reset", "closed")
    event(6 * 60, "forced_open", "forced_open")
    event(6 * 60, "policy_changed", "")  # not a state change
    assert drawn() == [
        ("open", 25),
        ("half_open", 0),
        ("open", 25),
        ("closed", 25),
        ("forced_open", 25),
    ]


def test_equal_neighbours_merge_and_other_circuits_do_not_count():
    event(20 * 60, "released", "closed")
    event(10 * 60, "closed", "closed")
    event(5 * 60, "opened", "open", circuit="other")
    assert drawn() == [("closed", 100)]


def test_too_many_changes_show_the_rest_as_unknown(monkeypatch):
    monkeypatch.setattr(timeline, "MAX_EVENTS", 2)
    event(23 * 60, "opened", "open")
    event(12 * 60, "closed", "closed")
    event(6 * 60, "opened", "open")
    assert drawn() == [("unknown", 50), ("closed", 25), ("open", 25)]


def test_markup_is_escaped_and_has_tooltips():
    policy = BreakerPolicyFactory(name="pay")
    CircuitEvent.objects.create(
        circuit="pay", policy=policy, kind="opened", to_state="<script>", created_at=NOW
    )
    svg = str(timeline.render("pay", now=NOW))
    assert "<script>" not in svg
    root = ElementTree.fromstring(svg)  # well-formed XML
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert "pay: 1 state changes in the last 24 hours" in titles
    assert any(t.endswith("Opened → <script>") for t in titles)  # escaped in markup
    ticks = [t.text for t in root.iter(f"{SVG}text")]
    assert len(ticks) == 9 and ticks[-1] == "now"
