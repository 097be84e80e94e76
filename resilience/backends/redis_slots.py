"""The Redis backend's bulkhead slots: given back in batches, their leases renewed."""

from __future__ import annotations

from typing import Any

from resilience.backends.redis_client import ERRORS
from resilience.backends.redis_fallback import FallbackTicket
from resilience.engine import Policy, Ticket


class RedisSlots:
    """``return_slot`` and ``renew_slots`` of ``RedisBackend``; ``_send_returns`` is what the
    ``SlotReturns`` thread (and ``flush``/``close``) sends, all circuits in one pipeline.

    Uses what the backend sets up: ``client``, ``_scripts``, ``_keys()``, ``_returns``,
    ``_outage``, ``_fail()``, ``_now_arg()``.
    """

    client: Any
    _scripts: dict[str, Any]
    _returns: Any
    _outage: Any
    _keys: Any
    _fail: Any
    _now_arg: Any

    def return_slot(self, ticket: Ticket, policy: Policy) -> None:
        if isinstance(ticket, FallbackTicket):
            if ticket.origin is not None:
                ticket.origin.return_slot(ticket, policy)
            return
        if ticket.slot is not None:  # sent once Redis is back if it is down now
            self._returns.add(ticket.circuit, ticket.slot)

    def _send_returns(self, waiting: dict[str, list[str]]) -> None:
        """Give slots back (background thread, ``close()``), all circuits in one round trip;
        kept for later while Redis is down."""
        if self._outage.active:
            self._returns.restore(waiting)
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for name, slots in waiting.items():
                pipe.zrem(self._keys(name)[2], *slots)
            pipe.execute()
        except ERRORS as exc:
            self._returns.restore(waiting)
            self._fail(exc)

    def renew_slots(self, name: str, policy: Policy, tickets: list[Ticket]) -> None:
        slots = []
        for ticket in tickets:
            if isinstance(ticket, FallbackTicket):
                if ticket.origin is not None:
                    ticket.origin.renew_slots(name, policy, [ticket])
            elif ticket.slot is not None:
                slots.append(ticket.slot)
        if not slots or self._outage.active:
            return
        try:
            args = [self._now_arg(), policy.slot_lease_ms, *slots]
            self._scripts["renew"](keys=[self._keys(name)[2]], args=args)
        except ERRORS as exc:
            self._fail(exc)
