"""Reverting a policy to a revision: validated like a form edit, recorded as a new revision."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from resilience import recorder
from resilience.policies import registry
from resilience.revisions.model import PolicyRevision, plain, tracked_fields
from resilience.revisions.recording import audit


def revert(
    policy: Any,
    revision: Any,
    actor: Any = None,
    reason: str = "",
    source: str = "",
    frozen: Iterable[str] = (),
) -> PolicyRevision:
    """Give ``policy`` the values of ``revision`` (a ``PolicyRevision`` or its id), validated
    like a form edit, as a new revision; records a ``policy_changed`` event. Everything or
    nothing: ``ValidationError`` with a clear message, and nothing saved, when the revision is
    missing or another policy's, restores nothing new, or its values no longer validate (an
    exception path that no longer imports, a kill switch whose end has passed, ...).
    ``PermissionDenied`` (nothing saved) when it would change one of the ``frozen`` fields,
    compared with the values under the row lock (the admin freezes the mode and the kill
    switch's end for a user who may not force)."""
    revision = _own(policy, revision)
    target = revision.restored()
    with transaction.atomic():
        current = type(policy)._base_manager.select_for_update().get(pk=policy.pk)
        now = {f.name: plain(f, getattr(current, f.attname)) for f in tracked_fields()}
        if any(name in target and now.get(name) != revision.values[name] for name in frozen):
            raise PermissionDenied
        if all(now.get(name) == revision.values[name] for name in target):
            raise ValidationError(
                _("The policy already has the values of revision %(id)s: nothing to revert.")
                % {"id": revision.pk},
                code="unchanged",
            )
        for name, value in target.items():
            setattr(current, name, value)
        _validate(current)
        reason = str(reason or "")
        with audit(actor=actor, reason=reason, source=source, reverted_from=revision):
            current.save()
        made = current.revisions.order_by("-id").first()
        text = _("Reverted to revision %(id)s (version %(version)s): %(diff)s.") % {
            "id": revision.pk,
            "version": revision.version,
            "diff": "; ".join(f"{label}: {a} → {b}" for label, a, b in made.diff()),
        }
        recorder.record_action(
            current.name,
            "policy_changed",
            actor=actor,
            reason=f"{text} {_('Reason:')} {reason}" if reason else str(text),
        )
    policy.refresh_from_db()
    return made


def _own(policy: Any, revision: Any) -> PolicyRevision:
    if not isinstance(revision, PolicyRevision):
        found = PolicyRevision.objects.filter(pk=revision).first() if revision else None
        if found is None:
            raise ValidationError(
                _("There is no revision %(id)s.") % {"id": str(revision)[:40]}, code="missing"
            )
        revision = found
    if revision.policy_id != policy.pk:
        raise ValidationError(
            _("Revision %(id)s belongs to circuit %(other)s, not to %(name)s.")
            % {"id": revision.pk, "other": revision.circuit, "name": policy.name},
            code="other_policy",
        )
    return revision


def _validate(policy: Any) -> None:
    """The checks of a form edit, and a kill switch must still lie ahead."""
    policy.full_clean(validate_unique=False)
    until = policy.forced_until
    if until is not None and until <= registry.now():
        raise ValidationError(
            {
                "forced_until": _(
                    "The kill switch of this revision ended at %(until)s; force the circuit "
                    "open again instead."
                )
                % {"until": until.isoformat(timespec="seconds")}
            },
            code="expired",
        )
