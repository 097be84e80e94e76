"""Reset, force open and release from the admin: buttons, bulk actions, permissions and audit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from resilience.decorators import breaker
from resilience.policies import registry
from resilience.revisions import RevisionSource, audit

logger = logging.getLogger("resilience")
REASON_MAX = 500


@dataclass(frozen=True)
class Control:
    """One manual operation: the ``Breaker`` method behind it and how it is worded."""

    slug: str
    method: str
    permission: str  # checked through ModelAdmin.has_<permission>_permission
    label: Promise
    log: Promise
    done_one: Promise  # with %(name)s
    done: Callable[[int], str]  # with %(count)d


CONTROLS = {
    control.slug: control
    for control in (
        Control(
            "reset",
            "reset",
            "reset",
            _("Reset"),
            _("Reset the circuit (closed, counters cleared)."),
            _("“%(name)s” was reset: closed, counters cleared."),
            lambda n: ngettext(
                "%(count)d circuit was reset: closed, counters cleared.",
                "%(count)d circuits were reset: closed, counters cleared.",
                n,
            ),
        ),
        Control(
            "force-open",
            "force_open",
            "force",
            _("Force open"),
            _("Forced the circuit open."),
            _("“%(name)s” is forced open: every call is rejected until released."),
            lambda n: ngettext(
                "%(count)d circuit is forced open: every call is rejected until released.",
                "%(count)d circuits are forced open: every call is rejected until released.",
                n,
            ),
        ),
        Control(
            "release",
            "release",
            "force",
            _("Release"),
            _("Released the circuit (mode back to enforced)."),
            _("“%(name)s” was released: back to enforced mode."),
            lambda n: ngettext(
                "%(count)d circuit was released: back to enforced mode.",
                "%(count)d circuits were released: back to enforced mode.",
                n,
            ),
        ),
    )
}


# How long "Force open" lasts: "" until released, a span, or until the time given.
DURATIONS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1)}


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        max_length=REASON_MAX,
        help_text=_("Kept in the history and the circuit's events."),
    )
    duration = forms.ChoiceField(
        label=_("Force open"),
        required=False,
        choices=[
            ("", _("until released")),
            ("15m", _("for 15 minutes")),
            ("1h", _("for 1 hour")),
            ("until", _("until …")),
        ],
    )
    until = forms.DateTimeField(
        label=_("until"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Released by itself at this time (server time zone)."),
    )

    def __init__(self, *args: Any, forcing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.forcing = forcing  # the duration only matters to "Force open"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        choice, until = data.get("duration") or "", data.get("until")
        if not self.forcing:
            choice = ""
        now = registry.now()
        if choice in DURATIONS:
            data["until"] = now + DURATIONS[choice]
        elif choice == "until":
            if until is None:
                self.add_error("until", _("Give the time the circuit is released by itself."))
            elif until <= now:
                self.add_error("until", _("This time is in the past."))
        else:
            data["until"] = None
        return data


class ReasonActionForm(helpers.ActionForm):
    """The changelist's action bar with a reason for the bulk action."""

    reason = forms.CharField(
        label=_("Reason:"),
        required=False,
        max_length=REASON_MAX,
        widget=forms.TextInput(attrs={"placeholder": _("why (kept in the audit trail)")}),
    )


def log_message(control: Control, reason: str) -> str:
    text = str(control.log)
    return f"{text} {_('Reason:')} {reason}" if reason else text


class CircuitControlMixin:
    """ModelAdmin mixin: the control buttons' URLs and views, bulk actions and permissions."""

    # Typed as ModelAdmin.actions (a mixin's attribute must agree with it).
    actions: Sequence[Any] | None = ("reset_circuits", "force_open_circuits", "release_circuits")
    action_form = ReasonActionForm

    # --- permissions ------------------------------------------------------------------------

    def has_reset_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("resilience.reset_circuit")

    def has_force_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("resilience.force_circuit")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An on-call operator allowed to reset or force must be able to see what they act on.
        return (
            super().has_view_permission(request, obj)  # type: ignore[misc]
            or self.has_reset_permission(request, obj)
            or self.has_force_permission(request, obj)
        )

    def allowed_controls(self, request: HttpRequest, obj: Any = None) -> list[Control]:
        return [
            control
            for control in CONTROLS.values()
            if getattr(self, f"has_{control.permission}_permission")(request, obj)
        ]

    # --- the work, shared by buttons and bulk actions ---------------------------------------

    def perform_control(
        self,
        request: HttpRequest,
        policy: Any,
        control: Control,
        reason: str,
        until: datetime | None = None,
    ) -> bool:
        """Run ``control`` on one policy's circuit, audited; False (and a message) on failure.
        ``until``: force open for a while (the kill switch lifts itself then)."""
        extra = {"until": until} if until is not None and control.method == "force_open" else {}
        try:
            with audit(source=RevisionSource.ADMIN):  # forcing and releasing are revisions
                getattr(breaker(policy.name), control.method)(
                    actor=request.user, reason=reason, **extra
                )
        except Exception as exc:
            logger.exception("resilience: admin %s of %r failed", control.method, policy.name)
            self.message_user(  # type: ignore[attr-defined]
                request,
                _("%(action)s of “%(name)s” failed: %(error)s")
                % {"action": control.label, "name": policy.name, "error": type(exc).__name__},
                messages.ERROR,
            )
            return False
        message = log_message(control, reason)
        if extra:
            message = f"{message} {_('Until:')} {until.isoformat() if until else ''}"
        self.log_change(request, policy, message)  # type: ignore[attr-defined]
        return True

    def _bulk(self, request: HttpRequest, queryset: Any, slug: str) -> None:
        control = CONTROLS[slug]
        reason = (request.POST.get("reason") or "").strip()[:REASON_MAX]
        done = sum(self.perform_control(request, policy, control, reason) for policy in queryset)
        if done:
            self.message_user(request, control.done(done) % {"count": done}, messages.SUCCESS)  # type: ignore[attr-defined]

    @admin.action(description=_("Reset selected circuits"), permissions=("reset",))
    def reset_circuits(self, request: HttpRequest, queryset: Any) -> None:
        self._bulk(request, queryset, "reset")

    @admin.action(description=_("Force selected circuits open"), permissions=("force",))
    def force_open_circuits(self, request: HttpRequest, queryset: Any) -> None:
        self._bulk(request, queryset, "force-open")

    @admin.action(description=_("Release selected circuits"), permissions=("force",))
    def release_circuits(self, request: HttpRequest, queryset: Any) -> None:
        self._bulk(request, queryset, "release")

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict:
        # Django 6.1 says where the actions are shown (``action_location``: the change list or,
        # new there, the change form) and warns about an override without the parameter;
        # earlier versions call get_actions(request).
        where = {} if action_location is None else {"action_location": action_location}
        actions = super().get_actions(request, **where)  # type: ignore[misc]
        # QuerySet.delete() skips BreakerPolicy.delete() and with it the policy-cache
        # invalidation; single deletes (the delete view) go through the model and stay.
        actions.pop("delete_selected", None)
        return actions

    # --- buttons ------------------------------------------------------------------------------

    def url_name(self, suffix: str) -> str:
        """``resilience_breakerpolicy_<suffix>``: the admin's URL names for this model."""
        opts = self.model._meta  # type: ignore[attr-defined]
        return f"{opts.app_label}_{opts.model_name}_{suffix.replace('-', '_')}"

    def get_urls(self) -> list:
        urls = [
            path(
                f"<path:object_id>/{slug}/",
                self.admin_site.admin_view(self.control_view),  # type: ignore[attr-defined]
                {"slug": slug},
                name=self.url_name(slug),
            )
            for slug in CONTROLS
        ]
        return urls + super().get_urls()  # type: ignore[misc]

    def control_view(self, request: HttpRequest, object_id: str, slug: str) -> HttpResponse:
        """POST only: GET never changes state. 403 without the permission, then 404."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        control = CONTROLS[slug]
        if not getattr(self, f"has_{control.permission}_permission")(request):
            raise PermissionDenied
        policy = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if policy is None:
            raise Http404(_("No such policy."))
        change_url = reverse(
            f"admin:{self.url_name('change')}",
            args=[quote(policy.pk)],
            current_app=self.admin_site.name,  # type: ignore[attr-defined]
        )
        form = ReasonForm(request.POST, forcing=control.method == "force_open")
        if not form.is_valid():
            for field, errors in form.errors.items():
                label = form.fields[field].label if field in form.fields else ""
                for error in errors:
                    self.message_user(request, f"{label}: {error}", messages.ERROR)  # type: ignore[attr-defined]
            return redirect(change_url)
        until = form.cleaned_data.get("until") if control.method == "force_open" else None
        if self.perform_control(request, policy, control, form.cleaned_data["reason"], until):
            done = control.done_one % {"name": policy.name}
            if until is not None:
                done = _("“%(name)s” is forced open until %(until)s, then released by itself.") % {
                    "name": policy.name,
                    "until": until.isoformat(timespec="minutes"),
                }
            self.message_user(request, done, messages.SUCCESS)  # type: ignore[attr-defined]
        return redirect(change_url)
