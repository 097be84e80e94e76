"""Policy revisions in the admin: the list on the policy page, the one-POST revert, and the
read-only revision log."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from resilience.admin.control import REASON_MAX
from resilience.admin.logs import CircuitParameter, ReadOnlyLog
from resilience.models import PolicyRevision, RevisionSource
from resilience.revisions import audit, revert

logger = logging.getLogger("resilience")
RECENT_REVISIONS = 20
FORCE_FIELDS = ("mode", "forced_until")  # what only a user with force_circuit may change


class RevertForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        max_length=REASON_MAX,
        help_text=_("Kept with the new revision and in the circuit's events."),
    )


def diff_html(revision: PolicyRevision) -> str:
    """The revision's changes as escaped lines, ``label: before → after``."""
    lines = revision.diff()
    if not lines:
        return str(_("created") if revision.source != RevisionSource.INITIAL else _("first values"))
    return format_html_join(mark_safe("<br>"), "<span>{}: {} → {}</span>", lines)


class RevisionMixin:
    """ModelAdmin mixin for ``BreakerPolicy``: revisions on the change page and their revert."""

    def get_urls(self) -> list:
        opts = self.model._meta  # type: ignore[attr-defined]
        urls = [
            path(
                "<path:object_id>/revisions/<int:revision_id>/revert/",
                self.admin_site.admin_view(self.revert_view),  # type: ignore[attr-defined]
                name=f"{opts.app_label}_{opts.model_name}_revert",
            )
        ]
        return urls + super().get_urls()  # type: ignore[misc]

    def revisions_context(self, request: HttpRequest, policy: Any) -> dict[str, Any]:
        """The latest revisions of ``policy``, each with its revert URL when this user may."""
        opts = self.model._meta  # type: ignore[attr-defined]
        may_revert = self.has_change_permission(request, policy)  # type: ignore[attr-defined]
        rows = list(
            PolicyRevision.objects.filter(policy=policy).select_related("actor")[:RECENT_REVISIONS]
        )
        listed = []
        for index, revision in enumerate(rows):
            url = None
            if may_revert and index > 0:  # the newest one holds the current values
                url = reverse(
                    f"admin:{opts.app_label}_{opts.model_name}_revert",
                    args=[quote(policy.pk), revision.pk],
                    current_app=self.admin_site.name,  # type: ignore[attr-defined]
                )
            listed.append({"revision": revision, "diff": diff_html(revision), "revert_url": url})
        all_url = None
        if request.user.has_perm(f"{opts.app_label}.view_policyrevision"):
            changelist = reverse(
                f"admin:{opts.app_label}_policyrevision_changelist",
                current_app=self.admin_site.name,  # type: ignore[attr-defined]
            )
            all_url = f"{changelist}?{urlencode({'circuit': policy.name})}"
        return {
            "revisions": listed,
            "revisions_url": all_url,
            "revert_form": RevertForm(auto_id="id_revert_%s"),
        }

    def revert_view(self, request: HttpRequest, object_id: str, revision_id: int) -> HttpResponse:
        """POST only (CSRF-checked by ``admin_view``): give the policy the values of one of its
        revisions. 403 without the change permission (and without ``force_circuit`` when the
        revert changes the mode or the kill switch's end), 404 for an unknown policy; a missing
        or foreign revision, or values that no longer validate, come back as an error message
        with nothing saved."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        policy = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if policy is None:
            raise Http404(_("No such policy."))
        if not self.has_change_permission(request, policy):  # type: ignore[attr-defined]
            raise PermissionDenied
        opts = self.model._meta  # type: ignore[attr-defined]
        change_url = reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change",
            args=[quote(policy.pk)],
            current_app=self.admin_site.name,  # type: ignore[attr-defined]
        )
        # Changing the mode or the kill switch's end is forcing or releasing (checked under
        # the row lock, against the values the revert would replace).
        forcer = self.has_force_permission(request, policy)  # type: ignore[attr-defined]
        form = RevertForm(request.POST)
        reason = form.cleaned_data["reason"] if form.is_valid() else ""
        try:
            with audit(source=RevisionSource.ADMIN):
                made = revert(
                    policy,
                    revision_id,
                    actor=request.user,
                    reason=reason,
                    frozen=() if forcer else FORCE_FIELDS,
                )
        except ValidationError as exc:
            for message in _messages(exc):
                self.message_user(request, message, messages.ERROR)  # type: ignore[attr-defined]
            return redirect(change_url)
        text = _("Reverted to revision %(id)s.") % {"id": made.reverted_from_id}
        self.log_change(  # type: ignore[attr-defined]
            request, policy, f"{text} {_('Reason:')} {reason}" if reason else str(text)
        )
        self.message_user(  # type: ignore[attr-defined]
            request,
            _("“%(name)s” now has the values of revision %(id)s (new revision %(new)s).")
            % {"name": policy.name, "id": made.reverted_from_id, "new": made.pk},
            messages.SUCCESS,
        )
        return redirect(change_url)


def _messages(exc: ValidationError) -> list[str]:
    prefix = str(_("Nothing was reverted:"))
    if hasattr(exc, "error_dict"):
        return [
            f"{prefix} {field}: {message}"
            for field, errors in exc.message_dict.items()
            for message in errors
        ]
    return [f"{prefix} {message}" for message in exc.messages]


class RevisionCircuitFilter(CircuitParameter):
    """``?circuit=name`` (the policy page links here); offers the circuit asked for."""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value)] if value else []


@admin.register(PolicyRevision)
class PolicyRevisionAdmin(ReadOnlyLog):
    """Every revision of every policy, read-only: reverting happens on the policy page."""

    policy_anchor = "#revisions"

    list_display = ("created_at", "circuit_link", "version", "source", "actor", "changes_cell")
    list_filter = (RevisionCircuitFilter, "source", "created_at")
    list_select_related = ("policy", "actor")
    search_fields = ("circuit", "reason")
    date_hierarchy = "created_at"
    fields = (
        "circuit_link",
        "version",
        "source",
        "actor",
        "reason",
        "changes_cell",
        "reverted_from",
        "created_at",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ("resilience/admin.css",)}

    @admin.display(description=_("changes"))
    def changes_cell(self, obj: PolicyRevision) -> str:
        return diff_html(obj)
