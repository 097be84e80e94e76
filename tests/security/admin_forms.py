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
    # The maintenance-window inline's management form: no window added or changed.
    windows = policy.maintenance_windows.count() if policy.pk else 0
    data["maintenance_windows-TOTAL_FORMS"] = windows
    data["maintenance_windows-INITIAL_FORMS"] = windows
    saved = policy.maintenance_windows.order_by("-starts_at") if windows else []
    for i, window in enumerate(saved):
        prefix = f"maintenance_windows-{i}"
        data[f"{prefix}-id"] = window.pk
        data[f"{prefix}-policy"] = policy.pk
        for field in ("starts_at", "ends_at"):  # the admin's split date and time inputs
            value = getattr(window, field)
            data[f"{prefix}-{field}_0"] = value.strftime("%Y-%m-%d")
            data[f"{prefix}-{field}_1"] = value.strftime("%H:%M:%S")
        data[f"{prefix}-mode"] = window.mode
        data[f"{prefix}-reason"] = window.reason
    return {**data, **changes}
