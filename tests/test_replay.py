"""The pure replay (resilience.replay) on hand-built history buckets: layout, estimates, policies.

Times below are seconds after T0 (a multiple of 10 s, so buckets are aligned as the history's
are); every expected number is worked out by hand in the test that checks it.
"""

from datetime import UTC, datetime

import pytest

from resilience.engine_types import Policy
from resilience.replay import (
    FAILED,
    FORCED,
    GUESS_FAILED,
    GUESS_OK,
    OK,
    Change,
    Run,
    layout,
    replay,
    simulate,
    timeline,
)

T0 = 1_700_000_000_000  # ms, a multiple of 10 s
CURRENT = Policy(failure_threshold=5, recovery_timeout=60.0)


def ms(seconds: float) -> int:
    return T0 + round(seconds * 1000)


def bucket(index: int, calls: int = 0, failures: int = 0, refused: int = 0, seconds: int = 10):
    """One history bucket in the contract's shape (docs/history.md)."""
    start = datetime.fromtimestamp(ms(index * seconds) / 1000, UTC)
    return {
        "start": start,
        "seconds": seconds,
        "calls": calls,
        "failures": failures,
        "slow": 0,
        "rejected": refused,
        "rejected_open": refused,
        "rejected_bulkhead": 0,
        "timeouts": 0,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
    }


# The story the stricter-policy tests replay (failure_threshold 5, recovery 60 s):
#   0-10 s   10 successes
#   10-20 s  4 failures (a run of 4: no opening at 5)
#   20-30 s  10 successes
#   30-40 s  5 failures, the 5th opens the circuit at 32.5 s; 1 call refused
#   40-90 s  2 calls refused every 10 s (open until 92.5 s)
#   90-100 s 1 refused (before 92.5 s); at 93 s the trial succeeds, closed; 9 more successes
#   100-110 s 10 successes
STORY = [
    bucket(0, 10),
    bucket(1, 4, 4),
    bucket(2, 10),
    bucket(3, 5, 5, 1),
    *(bucket(i, 0, 0, 2) for i in range(4, 9)),
    bucket(9, 10, 0, 1),
    bucket(10, 10),
]
STORY_CHANGES = [
    Change(ms(32.5), "opened", "closed"),
    Change(ms(93), "half_opened", "open"),
    Change(ms(93), "closed", "half_open"),
]


def test_the_current_policy_reproduces_what_happened():
    result = replay(STORY, STORY_CHANGES, CURRENT, CURRENT)
    actual = result["actual"]
    assert actual["opened"] == 1
    assert actual["open_seconds"] == 60.5  # 32.5 s to 93 s
    assert actual["rejected"] == 1 + 5 * 2 + 1
    assert (actual["calls"], actual["failures"]) == (49, 9)
    # Replayed: the same opening at the same moment, the same calls refused, none guessed.
    replayed = actual["replayed"]
    assert replayed == {
        "opened": 1,
        "open_seconds": 60.5,
        "rejected": 12,
        "calls": 49,
        "failures": 9,
        "estimated": 0,
    }
    assert result["proposed"] == replayed


def test_a_stricter_policy_opens_where_worked_out_by_hand():
    """failure_threshold 3 and recovery_timeout 80 s, by hand:

    - 10-20 s: the 4 failures are laid out centred, 2.5 s apart: 11.25, 13.75, 16.25, 18.75 s.
      The 3rd (16.25 s) makes 3 in a row: opened, until 16.25 + 80 = 96.25 s. Refused: the
      4th failure (1).
    - Everything up to 96.25 s is refused: 10 successes (20-30 s), 5 failures + 1 refused
      (30-40 s), 2 x 5 refused (40-90 s), then in 90-100 s the refused call at 91.25 s (open
      90-92.5 s), the real trial at 93 s and the 9 successes after it, 7/9 s apart from
      93.39 s: 93.39, 94.17, 94.94, 95.72 s are before 96.25 s (4).
      1 + 10 + 6 + 10 + 1 + 1 + 4 = 33 refused.
    - The call at 96.5 s (a known success) is the trial: closed. Open 96.5 - 16.25 = 80.25 s.
    - No refused call of the real circuit ran: nothing estimated.
    """
    stricter = Policy(failure_threshold=3, recovery_timeout=80.0, max_recovery_timeout=600.0)
    proposed = replay(STORY, STORY_CHANGES, CURRENT, stricter)["proposed"]
    assert proposed["opened"] == 1
    assert proposed["rejected"] == 33
    assert proposed["open_seconds"] == 80.25
    assert proposed["estimated"] == 0
    assert proposed["calls"] == 49 + 12 - 33  # every call, real or refused, less those refused


def test_a_looser_policy_runs_refused_calls_with_estimated_outcomes():
    """failure_threshold 6, by hand: the 5 failures at 30.5-32.5 s no longer open the circuit,
    so the calls the real circuit refused run, with estimated outcomes. Their failure rate goes
    from 100% (the 5 failures just before them) to 0% (the trial and the successes just after
    them) by where they are in the stretch 36.25-91.25 s.

    - 36.25 s (rate 100%) fails: 6 in a row, opened at 36.25 s, until 96.25 s.
    - Refused: the 10 calls of 40-90 s, the one at 91.25 s, the real trial at 93 s and the 4
      successes to 95.72 s: 16.
    - 96.5 s: trial, success, closed: open 96.5 - 36.25 = 60.25 s.
    - Failures: 4 (10-20 s) + 5 (30-32.5 s) + 1 estimated (36.25 s).
    """
    looser = Policy(failure_threshold=6, recovery_timeout=60.0)
    proposed = replay(STORY, STORY_CHANGES, CURRENT, looser)["proposed"]
    assert proposed["opened"] == 1
    assert proposed["open_seconds"] == 60.25
    assert proposed["rejected"] == 10 + 1 + 5
    assert proposed["estimated"] == 1
    assert proposed["failures"] == 4 + 5 + 1


def test_failures_in_a_mixed_bucket_are_spread_among_its_successes():
    """4 failures among 10 calls are laid out S F S F S S F S F S: the longest run is 1, so
    not even failure_threshold 2 opens (the documented lower bound on runs in a bucket)."""
    runs = layout([bucket(0, 10, 4)], [], CURRENT)
    assert [(r.count, r.code) for r in runs] == [
        (1, OK),
        (1, FAILED),
        (1, OK),
        (1, FAILED),
        (2, OK),
        (1, FAILED),
        (1, OK),
        (1, FAILED),
        (1, OK),
    ]
    assert [r.at(0) for r in runs[:2]] == [ms(0.5), ms(1.5)]
    strict = Policy(failure_threshold=2)
    assert replay([bucket(0, 10, 4)], [], CURRENT, strict)["proposed"]["opened"] == 0


def test_the_failures_before_an_opening_come_last_as_one_run():
    # 3 successes and 5 failures, opened at 4 s: the run of 5 ends exactly at the opening.
    changes = [Change(ms(4), "opened", "closed")]
    runs = layout([bucket(0, 8, 5, 2)], timeline(changes, ms(0), ms(10), CURRENT)[0], CURRENT)
    assert [(r.count, r.code) for r in runs[:2]] == [(3, OK), (5, FAILED)]
    assert runs[1].at(4) == ms(4)
    assert runs[2].code == GUESS_FAILED and runs[2].count == 2  # refused after a run: 100%


def test_refused_calls_fail_at_the_rate_next_to_them():
    # Refused calls between 5 failures and 5 successes: linearly from 100% to 0%.
    changes = [
        Change(ms(10), "opened", "closed"),
        Change(ms(70), "half_opened", "open"),
        Change(ms(70), "closed", "half_open"),
    ]
    buckets = [bucket(0, 5, 5), *(bucket(i, 0, 0, 4) for i in range(1, 7)), bucket(7, 5)]
    runs = layout(buckets, timeline(changes, ms(0), ms(80), CURRENT)[0], CURRENT)
    guessed = [r for r in runs if r.code in (GUESS_OK, GUESS_FAILED)]
    assert sum(r.count for r in guessed) == 24
    per_bucket = [
        sum(
            r.count
            for r in guessed
            if r.code == GUESS_FAILED and ms(10 * i) <= r.start < ms(10 * i + 10)
        )
        for i in range(1, 7)
    ]
    # 11.25-68.75 s; the bucket 10-20 s (middle 15 s) at 93.5%: 4 of 4, 60-70 s at 6.5%: 0.
    assert per_bucket[0] == 4 and per_bucket[-1] == 0
    assert per_bucket == sorted(per_bucket, reverse=True)


def test_a_kill_switch_stays_a_kill_switch():
    changes = [Change(ms(0), "forced_open"), Change(ms(20), "released")]
    buckets = [bucket(0, 0, 0, 7), bucket(1, 0, 0, 3), bucket(2, 10)]
    runs = layout(buckets, timeline(changes, ms(0), ms(30), CURRENT)[0], CURRENT)
    assert sum(r.count for r in runs if r.code == FORCED) == 10
    for policy in (CURRENT, Policy(mode="monitor"), Policy(mode="disabled")):
        proposed = replay(buckets, changes, CURRENT, policy)["proposed"]
        assert proposed["rejected"] == 10 and proposed["calls"] == 10


@pytest.mark.parametrize(
    ("mode", "opened", "rejected", "open_seconds"),
    [
        ("monitor", 1, 0, 60.5),  # the same opening, but nothing refused
        ("forced_open", 0, 49 + 12, 110.0),  # everything refused, open all along
        ("disabled", 0, 0, 0.0),  # everything runs, nothing counted
    ],
)
def test_modes(mode, opened, rejected, open_seconds):
    policy = Policy(mode=mode, failure_threshold=5, recovery_timeout=60.0)
    proposed = replay(STORY, STORY_CHANGES, CURRENT, policy)["proposed"]
    assert (proposed["opened"], proposed["rejected"], proposed["open_seconds"]) == (
        opened,
        rejected,
        open_seconds,
    )


def test_a_circuit_open_when_the_period_starts():
    # Opened 30 s before the period: open until 30 s into it, then quiet until the trial at
    # 35 s. Its time open counts from the period start; its opening is not in the period.
    changes = [
        Change(ms(-30), "opened", "closed"),
        Change(ms(35), "half_opened", "open"),
        Change(ms(35), "closed", "half_open"),
    ]
    buckets = [bucket(0, 0, 0, 3), bucket(1, 0, 0, 3), bucket(2, 0, 0, 3), bucket(3, 5)]
    spans, open_ms = timeline(changes, ms(0), ms(40), CURRENT)
    assert open_ms == 35_000
    assert [(s.kind, s.start - T0, s.end - T0) for s in spans] == [
        ("open", 0, 30_000),
        ("quiet", 30_000, 35_000),
        ("half_open", 35_000, 35_000),
        ("closed", 35_000, 40_000),
    ]
    actual = replay(buckets, changes, CURRENT, CURRENT)["actual"]
    assert (actual["opened"], actual["open_seconds"]) == (0, 35.0)


def test_no_history():
    result = replay([], [], CURRENT, CURRENT)
    assert result["actual"]["opened"] == 0 and result["proposed"]["rejected"] == 0


def test_runs_find_their_calls_before_a_time():
    run = Run(ms(0) + 0.5, 1000 / 3, 30, OK)
    assert run.index_at(0, ms(1)) == 3  # 0.5, 333.8, 667.2 ms are before 1 s
    assert run.index_at(5, ms(1)) == 5
    assert run.index_at(0, ms(100)) == 30
    point = Run(ms(5), 0, 3, OK)
    assert point.index_at(0, ms(5)) == 0 and point.index_at(0, ms(5) + 1) == 3


def test_successes_are_counted_in_bulk_exactly():
    # 100 000 successes then failures: the batches give the same answer as one by one.
    runs = [Run(ms(0), 0.1, 100_000, OK), Run(ms(10), 100, 5, FAILED)]
    outcome = simulate(runs, Policy(failure_threshold=5), ms(0), ms(20))
    assert (outcome.calls, outcome.failures, outcome.opened) == (100_005, 5, 1)
    rate = Policy(failure_threshold=0, failure_rate_threshold=50, minimum_calls=4)
    runs = [Run(ms(0), 100, 3, FAILED), Run(ms(0.3), 100, 5, OK)]
    # 3 failures, then the 1st success makes 4 calls at 75%: opened; the other 4 refused.
    outcome = simulate(runs, rate, ms(0), ms(10))
    assert (outcome.opened, outcome.calls, outcome.rejected) == (1, 4, 4)


def test_a_budget_bounds_the_layout_too_not_only_the_engine_steps():
    """Mixed buckets are laid out as runs of a few calls each (S F S F ...): 6 hours of an
    outage at 100 calls/s, half failing, is two million runs in memory before a single engine
    step. A replay with a budget stops as soon as the layout passes it."""
    import tracemalloc

    from resilience.replay import ReplayTooLarge

    buckets = [bucket(i, calls=6_000, failures=3_000, seconds=60) for i in range(360)]
    tracemalloc.start()
    try:
        with pytest.raises(ReplayTooLarge):
            replay(buckets, [], CURRENT, Policy(failure_threshold=3), max_steps=50_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30_000_000, peak
