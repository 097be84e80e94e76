"""Outcomes for the calls the real circuit refused, estimated from the admitted calls next to
them."""

from __future__ import annotations

import math
from collections.abc import Iterable

from resilience.replay.types import (
    FAILED,
    FORCED,
    GUESS_FAILED,
    GUESS_OK,
    OK,
    UNKNOWN,
    ReplayTooLarge,
    Run,
)

# How many admitted calls on each side of a refused stretch estimate its failure rate.
NEIGHBOURS = 5


def estimate(runs: list[Run], max_runs: int | None = None) -> list[Run]:
    """Give the refused calls outcomes: each stretch of refused calls fails at a rate going
    linearly from that of the admitted calls just before it to that of those just after it
    (``_rate``; one side alone when the other has none; 100% with none at all)."""
    result: list[Run] = []
    i = 0
    while i < len(runs):
        if runs[i].code != UNKNOWN:
            result.append(runs[i])
            i += 1
            continue
        j = i
        while j < len(runs) and runs[j].code in (UNKNOWN, FORCED):
            j += 1
        result += _guess(runs, i, j)
        within(len(result), max_runs)
        i = j
    return result


def _guess(runs: list[Run], i: int, j: int) -> list[Run]:
    before = _rate(runs[k] for k in range(i - 1, -1, -1))
    after = _rate(runs[k] for k in range(j, len(runs)))
    before = after if before is None else before
    after = before if after is None else after
    first, last = runs[i].start, runs[j - 1].at(runs[j - 1].count - 1)
    guessed: list[Run] = []
    for run in runs[i:j]:
        if run.code != UNKNOWN:
            guessed.append(run)
            continue
        middle = run.start + run.step * (run.count - 1) / 2
        where = (middle - first) / (last - first) if last > first else 0.5
        rate = 1.0 if before is None or after is None else before + (after - before) * where
        index = 0
        for length, failed in spread_failures(run.count, round(rate * run.count)):
            start = run.start + index * run.step
            guessed.append(Run(start, run.step, length, GUESS_FAILED if failed else GUESS_OK))
            index += length
    return guessed


def _rate(runs: Iterable[Run]) -> float | None:
    """The failure rate of the admitted calls next to a refused stretch (``runs`` goes away
    from it): the nearest unbroken block of them, at most ``NEIGHBOURS`` calls; None: none."""
    seen = failed = 0
    for run in runs:
        if run.code not in (OK, FAILED):
            if seen:
                break  # the block ends at the next refused call
            continue
        take = min(run.count, NEIGHBOURS - seen)
        seen += take
        failed += take if run.code == FAILED else 0
        if seen >= NEIGHBOURS:
            break
    return failed / seen if seen else None


def spread_failures(n: int, k: int) -> list[tuple[int, bool]]:
    """``n`` outcomes with ``k`` failures spread as evenly as possible, as (length, failed)
    blocks in order; O(min(k, n - k)) blocks."""
    if k <= 0 or k >= n:
        return [(n, k > 0)] if n else []
    minority = min(k, n - k)
    marks = [math.floor((j + 0.5) * n / minority) for j in range(minority)]
    blocks: list[tuple[int, bool]] = []
    previous = 0
    minority_failed = k <= n - k
    for mark in marks:
        blocks += [(mark - previous, not minority_failed), (1, minority_failed)]
        previous = mark + 1
    blocks.append((n - previous, not minority_failed))
    return [(length, failed) for length, failed in blocks if length]


def within(runs: int, max_runs: int | None) -> None:
    """``ReplayTooLarge`` when ``runs`` is past ``max_runs`` (None: no limit)."""
    if max_runs is not None and runs > max_runs:
        raise ReplayTooLarge(f"more than {max_runs} runs of calls to lay out")
