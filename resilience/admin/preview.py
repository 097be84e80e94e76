"""The policy change page's Preview: the stored policy and the edited values replayed."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from resilience import whatif
from resilience.admin.forms import preview_form
from resilience.exceptions import BackendError
from resilience.models import BreakerPolicy
from resilience.replay import ReplayTooLarge

# The change form's Preview button (a submit button of the form itself) and its period.
PREVIEW, PREVIEW_HOURS = "_preview", "_preview_hours"
# A replay runs a busy circuit's failures one by one through the engine (docs/replay.md,
# "Cost"): the Preview stops after this many engine steps per policy (about 2 s each on one
# core) rather than hold a worker for minutes; the command has no limit.
PREVIEW_MAX_STEPS = 500_000
PREVIEW_CHOICES = ((1, _("1 hour")), (6, _("6 hours")), (24, _("24 hours")), (168, _("7 days")))
PREVIEW_ROWS = (
    (_("openings"), "opened"),
    (_("time open (s)"), "open_seconds"),
    (_("calls refused"), "rejected"),
    (_("calls run"), "calls"),
    (_("failures among them"), "failures"),
)


class PreviewMixin:
    """ModelAdmin mixin for ``BreakerPolicy``: a Preview POST gets a form that never saves."""

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]
        if request.method == "POST" and PREVIEW in request.POST:
            # Django saves only a valid form: a preview form never is (see PreviewForm).
            return preview_form(form)
        return form


def preview_context(request: HttpRequest, obj: BreakerPolicy, adminform: Any) -> dict[str, Any]:
    """The Preview button's period choices and, after a valid Preview POST, the replay of the
    stored policy next to the edited values (``obj``, the form's unsaved instance)."""
    try:
        hours = int(request.POST.get(PREVIEW_HOURS, ""))
    except ValueError:
        hours = int(whatif.DEFAULT_HOURS)
    if hours not in dict(PREVIEW_CHOICES):
        hours = int(whatif.DEFAULT_HOURS)
    context: dict[str, Any] = {"preview_choices": PREVIEW_CHOICES, "preview_hours": hours}
    stored = BreakerPolicy.objects.filter(pk=obj.pk).first()
    if not getattr(getattr(adminform, "form", None), "previewable", False) or stored is None:
        return context
    try:
        result = whatif.preview(stored, obj, hours, PREVIEW_MAX_STEPS)
    except BackendError as exc:
        context["preview_error"] = _("The history could not be read (%(error)s).") % {
            "error": type(exc).__name__
        }
        return context
    except ReplayTooLarge:
        context["preview_error"] = _(
            "Too many calls to replay within a page request over the last %(hours)s h: choose "
            "a shorter period, or run manage.py resilience replay %(name)s --hours %(hours)s."
        ) % {"hours": hours, "name": stored.name}
        return context
    report = result.report
    actual, proposed = report["actual"], report["proposed"]
    labels = {f.name: f.verbose_name for f in BreakerPolicy._meta.fields}
    context["preview"] = {
        "report": report,
        "start": result.start,
        "end": result.end,
        "bucket_seconds": result.bucket_seconds,
        "rows": [(label, actual[key], proposed[key]) for label, key in PREVIEW_ROWS],
        "changed": [(labels[name], value) for name, value in proposed["changed"].items()],
        "not_replayed": [labels[name] for name in proposed["not_replayed"]],
    }
    return context
