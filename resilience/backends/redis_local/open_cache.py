"""Rejections the Redis backend remembers, so that an open circuit costs no round trip."""

from __future__ import annotations

from resilience.engine import MONITOR, OPEN, Policy, Ticket


class OpenCache:
    """Rejections remembered per circuit, so that an open circuit costs no round trip.

    An entry answers for its circuit until the trial time (``until``) or until ``fresh_until``
    (``POLICY_REFRESH_SECONDS`` after the rejection, so that a reset made by another process is
    seen in time), whichever comes first, and only for the policy it was computed with (a larger
    ``half_open_max_calls`` may admit at once). Times are in the backend's local milliseconds.
    Past ``fresh_until``, the trial time (or for another policy) the entry no longer answers but
    is kept, as what this process last knew, until Redis answers again (``put``/``discard``):
    an outage that starts right then still knows the circuit is open (``known_open``), and the
    next acquire goes straight to the script (``name in cache``: not closed when last seen).
    Any operation of this process on the circuit drops its entry.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Policy, str, str, int, int, int, int]] = {}

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str, policy: Policy, now: int) -> Ticket | None:
        entry = self._entries.get(name)
        if entry is None:
            return None
        cached_policy, state, epoch, generation, until, fresh_until, since = entry
        if now < since:
            self._entries.pop(name, None)  # the clock stepped back: forget what it said
            return None
        if now >= min(until, fresh_until) or (
            cached_policy is not policy and cached_policy != policy
        ):
            return None
        monitor = policy.mode == MONITOR
        return Ticket(name, monitor, state, generation, None, until - now, monitor, (), epoch)

    def put(self, name: str, policy: Policy, ticket: Ticket, now: int, refresh_ms: int) -> None:
        if ticket.retry_after_ms > 0 and refresh_ms > 0:
            until = now + ticket.retry_after_ms
            self._entries[name] = (
                policy, ticket.state, ticket.epoch, ticket.generation, until, now + refresh_ms,
                now,
            )  # fmt: skip

    def known_open(self, now: int) -> list[tuple[str, int]]:
        """``(circuit, trial time)`` of every circuit last seen open whose trial is still ahead."""
        # A copy: other threads put and pop entries meanwhile.
        entries = self._entries.copy()
        return [
            (name, entry[4])
            for name, entry in entries.items()
            if entry[1] == OPEN and entry[6] <= now < entry[4]
        ]

    def discard(self, name: str) -> None:
        self._entries.pop(name, None)

    def clear(self) -> None:
        self._entries.clear()
