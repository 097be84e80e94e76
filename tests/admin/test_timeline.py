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


def rects(circuit="pay"):
    """The bar's ``rect``s, left to right (narrow ones are drawn last, on top)."""
    root = ElementTree.fromstring(str(timeline.render(circuit, now=NOW)))
    return sorted(root.findall(f"{SVG}rect"), key=lambda rect: float(rect.get("x")))


def state(element):
    return element.get("class").split()[1].removeprefix("rs-")


def drawn(circuit="pay"):
    """``[(state, width%)]`` of the bar, parsed back from the SVG."""
    return [(state(rect), round(float(rect.get("width")) / 9.6)) for rect in rects(circuit)]


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


def test_a_one_minute_outage_is_visible_marked_and_timed():
    event(10 * 60 + 1, "opened", "open")
    event(10 * 60, "closed", "closed")
    closed_before, outage, closed_after = rects()
    assert state(outage) == "open"
    assert float(outage.get("width")) >= timeline.MIN_WIDTH  # 0.67 units proportionally
    # Centred where it happened (14 h into the day), between its neighbours.
    centre = float(outage.get("x")) + float(outage.get("width")) / 2
    assert centre == pytest.approx((14 * 60 - 0.5) / (24 * 60) * timeline.WIDTH, abs=0.01)
    # Drawn after its neighbours, so neither covers it.
    root = ElementTree.fromstring(str(timeline.render("pay", now=NOW)))
    assert state(root.findall(f"{SVG}rect")[-1]) == "open"
    start = timezone.localtime(NOW - timedelta(minutes=10 * 60 + 1)).strftime("%H:%M:%S")
    end = timezone.localtime(NOW - timedelta(minutes=10 * 60)).strftime("%H:%M:%S")
    expected = f"open from {start} to {end} (1\u00a0min 0\u00a0s)"
    assert outage.find(f"{SVG}title").text == expected
    [blip] = root.findall(f"{SVG}polygon")  # the marker above the bar
    assert state(blip) == "open"
    assert blip.find(f"{SVG}title").text == expected
    xs = [float(point.split(",")[0]) for point in blip.get("points").split()]
    assert min(xs) < centre < max(xs)


def test_long_stretches_and_short_closed_ones_get_no_marker():
    event(13 * 60, "opened", "open")
    event(12 * 60, "closed", "closed")  # closed for a minute in between
    event(12 * 60 - 1, "opened", "open")
    event(6 * 60, "closed", "closed")
    root = ElementTree.fromstring(str(timeline.render("pay", now=NOW)))
    assert root.findall(f"{SVG}polygon") == []
    assert [s for s, _width in drawn()] == ["closed", "open", "closed", "open", "closed"]
