"""What a browser would POST to the policy admin's change form."""

from __future__ import annotations

from resilience.models import BreakerPolicy


def form_data(policy: BreakerPolicy, **changes) -> dict:
    """A complete, valid change-form POST for ``policy`` with ``changes`` applied."""
    data = {}
    for field in BreakerPolicy._meta.concrete_fields:
        if not field.editable or field.primary_key:
            continue
        value = getattr(policy, field.name)
        if isinstance(value, bool):
            if value:
                data[field.name] = "on"
        else:
            data[field.name] = "" if value is None else value
    data.pop("name", None)  # read-only on the change page
    return {**data, **changes}
