"""The recorded counts of each history bucket laid out in time as runs of calls, placed in the
real circuit's spans."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from resilience.engine_types import CLOSED, HALF_OPEN, Policy
from resilience.replay.estimate import estimate, spread_failures, within
from resilience.replay.types import (
    FAILED,
    FORCED,
    FORCED_SPAN,
    OK,
    QUIET,
    REFUSING,
    UNKNOWN,
    Run,
    Span,
)


def bucket_ms(bucket: dict[str, Any]) -> int:
    """When ``bucket`` starts, in Unix ms."""
    return round(bucket["start"].timestamp() * 1000)


def bucket_count(bucket: dict[str, Any], key: str, fallback: str = "") -> int:
    """``bucket[key]`` (else ``bucket[fallback]``) as a count, at least 0."""
    value = bucket.get(key, bucket.get(fallback, 0) if fallback else 0)
    return max(0, int(value or 0))


def layout(
    buckets: Sequence[dict[str, Any]],
    spans: Sequence[Span],
    policy: Policy,
    max_runs: int | None = None,
) -> list[Run]:
    """Every recorded call as runs in time order, placed in the real circuit's spans.

    Admitted calls go where the real circuit admitted calls (closed spans; a half-open span's
    trial), refused ones where it refused them; within a span calls are evenly spaced and
    failures spread evenly among successes, except the failures that ended in an opening (a
    trial's failure, a closed span's last ``failure_threshold`` failures) which come last.
    Refused calls get estimated outcomes (``estimate``). ``ReplayTooLarge`` past ``max_runs``.
    """
    runs: list[Run] = []
    for bucket in buckets:
        begin = bucket_ms(bucket)
        finish = begin + int(bucket["seconds"]) * 1000
        pieces = _clip(spans, begin, finish)
        calls = bucket_count(bucket, "calls")
        failures = min(calls, bucket_count(bucket, "failures"))
        refused = bucket_count(bucket, "rejected_open", "rejected")
        runs += _bucket_runs(pieces, begin, finish, calls, failures, refused, policy)
        within(len(runs), max_runs)
    return estimate(runs, max_runs)


def _clip(spans: Sequence[Span], begin: int, finish: int) -> list[Span]:
    pieces = []
    for span in spans:
        inside = span.start < finish and span.end > begin
        point = span.start == span.end and begin <= span.start < finish
        if inside or point:
            start, end = max(span.start, begin), min(span.end, finish)
            pieces.append(
                Span(
                    start,
                    end,
                    span.kind,
                    trial=span.trial and start == span.start,
                    ends=span.ends if end == span.end else "",
                )
            )
    return pieces or [Span(begin, finish, CLOSED)]


def _shares(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders; equal if all 0)."""
    if not weights:
        return []
    if sum(weights) <= 0:
        weights = [1.0] * len(weights)
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: shares[i] - exact[i])
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _bucket_runs(
    pieces: list[Span],
    begin: int,
    finish: int,
    calls: int,
    failures: int,
    refused: int,
    policy: Policy,
) -> list[Run]:
    admitted = _admitted_counts(pieces, calls)
    refusing = _refused_counts(pieces, refused)
    if sum(admitted) < calls or sum(refusing) < refused:  # the timeline has no room: no events
        pieces = [Span(begin, finish, CLOSED)]
        admitted, refusing = [calls], [refused]
    tails, free = _tails(pieces, admitted, failures, policy)
    left = failures - sum(tails)
    spread = _shares(left, free) if sum(free) >= left else _overflow(admitted, tails, left)
    runs: list[Run] = []
    for piece, n, tail, k, r in zip(pieces, admitted, tails, spread, refusing, strict=True):
        runs += _piece_runs(piece, n, tail, k, r)
    return runs


def _admitted_counts(pieces: list[Span], calls: int) -> list[int]:
    """How many admitted calls each piece gets: one per trial, the rest to closed time."""
    counts = [0] * len(pieces)
    trials = [i for i, p in enumerate(pieces) if p.kind == HALF_OPEN and p.trial]
    for i in trials[:calls]:
        counts[i] = 1
    rest = calls - sum(counts)
    closed = [i for i, p in enumerate(pieces) if p.kind == CLOSED]
    hosts = closed or trials
    weights = [pieces[i].end - pieces[i].start for i in hosts]
    for i, share in zip(hosts, _shares(rest, weights), strict=True):
        counts[i] += share
    return counts


def _refused_counts(pieces: list[Span], refused: int) -> list[int]:
    """Refused calls go to open and forced time; else half-open, else quiet time."""
    counts = [0] * len(pieces)
    for kinds in (REFUSING, (HALF_OPEN,), (QUIET,)):
        hosts = [i for i, p in enumerate(pieces) if p.kind in kinds]
        if hosts:
            weights = [pieces[i].end - pieces[i].start for i in hosts]
            for i, share in zip(hosts, _shares(refused, weights), strict=True):
                counts[i] = share
            break
    return counts


def _tails(
    pieces: list[Span], admitted: list[int], failures: int, policy: Policy
) -> tuple[list[int], list[int]]:
    """Failures that must come last in each piece (those that ended in an opening: a trial's,
    a closed span's last ``failure_threshold``), and how many calls of each piece may take
    the other failures (none of a trial that ended: its outcome is known)."""
    tails, free = [0] * len(pieces), [0] * len(pieces)
    left = failures
    for i, piece in enumerate(pieces):
        n = admitted[i]
        if piece.kind == HALF_OPEN and piece.ends in ("opened", "closed"):
            tails[i] = min(left, n, 1 if piece.ends == "opened" else 0)
        elif piece.kind == CLOSED and piece.ends == "opened":
            tails[i] = min(left, n, max(1, policy.failure_threshold))
            free[i] = n - tails[i]
        else:
            free[i] = n
        left -= tails[i]
    return tails, free


def _overflow(admitted: list[int], tails: list[int], left: int) -> list[int]:
    """More failures than free calls (a record that does not match the timeline): fill up."""
    room = [n - t for n, t in zip(admitted, tails, strict=True)]
    return [min(r, max(0, left - sum(room[:i]))) for i, r in enumerate(room)]


def _piece_runs(piece: Span, admitted: int, tail: int, spread: int, refused: int) -> list[Run]:
    """Admitted calls (``spread`` failures evenly, then ``tail`` failures) then refused ones."""
    total = admitted + refused
    if not total:
        return []
    width = piece.end - piece.start
    cut = piece.start + width * admitted / total  # a piece with both: admitted first
    runs: list[Run] = []
    if admitted:
        # A trial comes first in its span; the run that opened a closed span ends at the
        # opening; other calls are centred in their slots.
        offset = 0.0 if piece.trial else (1.0 if piece.ends == "opened" else 0.5)
        step = (cut - piece.start) / admitted
        blocks = [*spread_failures(admitted - tail, spread), (tail, True)]
        index = 0
        for length, failed in blocks:
            if length:
                start = piece.start + (index + offset) * step
                runs.append(Run(start, step, length, FAILED if failed else OK))
                index += length
    if refused:
        step = (piece.end - cut) / refused
        code = FORCED if piece.kind == FORCED_SPAN else UNKNOWN
        runs.append(Run(cut + 0.5 * step, step, refused, code))
    return runs
