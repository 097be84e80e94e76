"""``BreakerPolicy``: the thresholds and mode of one circuit, edited live in the admin."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from resilience import recorder
from resilience.backends import get_backend
from resilience.compat import check_constraint
from resilience.conf import settings as conf
from resilience.models.bounds import BOUNDS, bounded, number_problem
from resilience.policies import ResolvedPolicy, registry
from resilience.revisions import (
    SCHEDULE_FIELDS,
    PolicyRevision,
    RevisionSource,
    audit,
    before_save,
    record,
    record_update,
    revert,
    stored_before_update,
)
from resilience.validators import (
    split_lines,
    validate_circuit_name,
    validate_email_list,
    validate_exception_paths,
    validate_finite,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from django.utils.functional import Promise

logger = logging.getLogger("resilience")


class Mode(models.TextChoices):
    ENFORCED = "enforced", _("Enforced")
    MONITOR = "monitor", _("Monitor only (never reject)")
    FORCED_OPEN = "forced_open", _("Forced open (kill switch)")
    DISABLED = "disabled", _("Disabled (pass through)")


class BreakerPolicyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        """Bump ``version`` too, so every process's policy refresh notices a bulk update."""
        if "mode" in kwargs and kwargs["mode"] != Mode.FORCED_OPEN:
            kwargs.setdefault("forced_until", None)  # a time-boxed kill switch ends with it
        kwargs.setdefault("version", F("version") + 1)
        kwargs.setdefault("updated_at", timezone.now())
        with transaction.atomic(using=self.db):
            before = stored_before_update(self, kwargs)
            count = super().update(**kwargs)
            if before:  # a tracked field: each changed row is a revision (``revisions``)
                record_update(self.model, before)
        registry.invalidate()
        transaction.on_commit(registry.invalidate, robust=True)
        return count


class BreakerPolicy(models.Model):
    """Thresholds and behaviour of one named circuit, edited live in the admin."""

    name = models.CharField(
        _("name"),
        max_length=100,
        unique=True,
        validators=[validate_circuit_name],
        help_text=_("Circuit name used in code, e.g. payments-api."),
    )
    description = models.TextField(_("description"), blank=True)
    mode = models.CharField(_("mode"), max_length=20, choices=Mode.choices, default=Mode.ENFORCED)
    window_mode = models.CharField(
        _("maintenance mode"),
        max_length=20,
        blank=True,
        default="",
        editable=False,
        help_text=_("The mode of the maintenance window in force now; empty: none."),
    )
    window_next_at = models.DateTimeField(
        _("next maintenance change"),
        null=True,
        blank=True,
        editable=False,
        db_index=True,
        help_text=_("When a maintenance window of this policy starts or ends next."),
    )
    forced_until = models.DateTimeField(
        _("forced open until"),
        null=True,
        blank=True,
        editable=False,
        db_index=True,
        help_text=_(
            "Set by a time-boxed kill switch: the circuit is released by itself at this time."
        ),
    )

    failure_threshold = models.PositiveIntegerField(
        _("failure threshold"),
        default=5,
        validators=bounded("failure_threshold"),
        help_text=_("Consecutive failures that open the circuit. 0 turns this rule off."),
    )
    failure_rate_threshold = models.PositiveSmallIntegerField(
        _("failure rate threshold (%)"),
        default=0,
        validators=bounded("failure_rate_threshold"),
        help_text=_("Percent of failed calls in the window that opens the circuit. 0 = off."),
    )
    window_seconds = models.PositiveIntegerField(
        _("window (seconds)"),
        default=60,
        validators=bounded("window_seconds"),
        help_text=_("Length of the sliding window for the failure rate, in seconds."),
    )
    minimum_calls = models.PositiveIntegerField(
        _("minimum calls"),
        default=10,
        validators=bounded("minimum_calls"),
        help_text=_("Calls needed in the window before the failure rate can open the circuit."),
    )
    slow_call_ms = models.PositiveIntegerField(
        _("slow call (ms)"),
        default=0,
        validators=bounded("slow_call_ms"),
        help_text=_(
            "A call running longer than this many milliseconds counts as a failure at that "
            "moment, while it is still running (see docs/engine.md). 0 = off."
        ),
    )
    max_concurrent_calls = models.PositiveIntegerField(
        _("max concurrent calls"),
        default=0,
        validators=bounded("max_concurrent_calls"),
        help_text=_(
            "Bulkhead: the most calls of this circuit in flight at once, counted across every "
            "process sharing the backend; a call over the cap is refused at once. 0 = no cap."
        ),
    )
    call_timeout_ms = models.PositiveIntegerField(
        _("call timeout (ms)"),
        default=0,
        validators=bounded("call_timeout_ms"),
        help_text=_(
            "The longest a protected call may take, in milliseconds: sent as the request "
            "timeout by the HTTP adapters, enforced on coroutines, judged at the deadline for "
            "plain functions. A timed-out call is a failure. 0 = none."
        ),
    )

    recovery_timeout = models.FloatField(
        _("recovery timeout (seconds)"),
        default=60.0,
        validators=[validate_finite, *bounded("recovery_timeout")],
        help_text=_("Seconds the circuit stays open before a trial call is let through."),
    )
    backoff_multiplier = models.FloatField(
        _("backoff multiplier"),
        default=1.0,
        validators=[validate_finite, *bounded("backoff_multiplier")],
        help_text=_("Each re-trip without full recovery multiplies the open time by this."),
    )
    max_recovery_timeout = models.FloatField(
        _("max recovery timeout (seconds)"),
        default=600.0,
        validators=[validate_finite, *bounded("max_recovery_timeout")],
        help_text=_("Upper bound in seconds for the open time after backoff."),
    )
    half_open_max_calls = models.PositiveIntegerField(
        _("half-open trial calls"),
        default=1,
        validators=bounded("half_open_max_calls"),
        help_text=_("Trial calls allowed at the same time while half-open."),
    )
    success_threshold = models.PositiveIntegerField(
        _("success threshold"),
        default=1,
        validators=bounded("success_threshold"),
        help_text=_("Successful trial calls that close the circuit again."),
    )

    ignore_exceptions = models.TextField(
        _("ignored exceptions"),
        blank=True,
        validators=[validate_exception_paths],
        help_text=_("Dotted exception paths, one per line, never counted as failures."),
    )
    record_exceptions = models.TextField(
        _("recorded exceptions"),
        blank=True,
        validators=[validate_exception_paths],
        help_text=_("If set, only these exceptions (dotted paths, one per line) count."),
    )

    retry_attempts = models.PositiveSmallIntegerField(
        _("retry attempts"),
        default=0,
        validators=bounded("retry_attempts"),
        help_text=_("Extra attempts inside the breaker; one logical call is one outcome."),
    )
    retry_backoff_ms = models.PositiveIntegerField(
        _("retry backoff (ms)"),
        default=100,
        validators=bounded("retry_backoff_ms"),
        help_text=_("First retry delay in milliseconds; doubles each attempt, with jitter."),
    )
    retry_max_backoff_ms = models.PositiveIntegerField(
        _("max retry backoff (ms)"),
        default=2000,
        validators=bounded("retry_max_backoff_ms"),
        help_text=_("Upper bound for one retry delay, in milliseconds."),
    )

    alert_on_open = models.BooleanField(
        _("alert when opened"), default=True, help_text=_("E-mail when the circuit opens.")
    )
    alert_on_recovery = models.BooleanField(
        _("alert when recovered"), default=False, help_text=_("E-mail when it closes again.")
    )
    alert_recipients = models.TextField(
        _("alert recipients"),
        blank=True,
        validators=[validate_email_list],
        help_text=_("E-mail addresses, one per line. Empty: ALERTS['RECIPIENTS'], then ADMINS."),
    )
    alert_cooldown_seconds = models.PositiveIntegerField(
        _("alert cooldown (seconds)"),
        null=True,
        blank=True,
        validators=bounded("alert_cooldown_seconds"),
        help_text=_(
            "Repeat openings within this many seconds are summarised, not mailed. "
            "Empty: ALERTS['COOLDOWN_SECONDS']."
        ),
    )
    critical = models.BooleanField(
        _("critical"),
        default=False,
        help_text=_("When open, the health endpoint reports the site as degraded."),
    )

    version = models.PositiveIntegerField(_("version"), default=1, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = BreakerPolicyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("breaker policy")
        verbose_name_plural = _("breaker policies")
        permissions = [
            ("reset_circuit", _("Can reset a circuit")),
            ("force_circuit", _("Can force a circuit open and release it")),
        ]
        constraints = [
            *(
                check_constraint(
                    Q(**{f"{field}__gte": low, f"{field}__lte": high}),
                    f"resilience_policy_{field}_range",
                )
                for field, (low, high) in BOUNDS.items()
                if field != "alert_cooldown_seconds"
            ),
            check_constraint(
                Q(max_recovery_timeout__gte=F("recovery_timeout")),
                "resilience_policy_max_recovery_gte_recovery",
            ),
            check_constraint(
                Q(retry_max_backoff_ms__gte=F("retry_backoff_ms")),
                "resilience_policy_retry_max_gte_backoff",
            ),
            check_constraint(
                Q(mode__in=[choice.value for choice in Mode]), "resilience_policy_mode_valid"
            ),
            check_constraint(
                Q(forced_until__isnull=True) | Q(mode=Mode.FORCED_OPEN),
                "resilience_policy_forced_until_only_forced",
            ),
            check_constraint(
                Q(alert_cooldown_seconds__isnull=True)
                | Q(alert_cooldown_seconds__lte=BOUNDS["alert_cooldown_seconds"][1]),
                "resilience_policy_alert_cooldown_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if self.mode != Mode.FORCED_OPEN:
            self.forced_until = None  # a time-boxed kill switch ends with the forced mode
        if self.pk is not None and not self._state.adding and kwargs.get("update_fields") is None:
            # The maintenance fields belong to the window sweep: a form loaded before a window
            # started must not write its stale copy back.
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in SCHEDULE_FIELDS
            ]
        if self.pk is not None:
            self.version = (self.version or 0) + 1
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                extra = {"forced_until"} if "mode" in update_fields else set()
                kwargs["update_fields"] = {*update_fields, *extra, "version", "updated_at"}
        with transaction.atomic(using=kwargs.get("using")):
            before = before_save(self, kwargs.get("using"))  # locks the row till commit
            if before is not None:  # one more than stored: a save committed since counts too
                self.version = before["version"] + 1
            super().save(*args, **kwargs)
            record(self, before, kwargs.get("update_fields"))  # a revision, if anything changed
        self._invalidate(self)

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        self._invalidate(None)
        return result

    @classmethod
    def from_settings(cls, name: str) -> BreakerPolicy:
        """An unsaved policy of circuit ``name`` with ``POLICIES[name]`` or ``DEFAULT_POLICY``
        applied (the built-in defaults when those values are invalid; logged).

        Invalid means what ``manage.py check`` reports (-1, NaN, inf, "2s", 2.5): a bad
        setting never breaks a call, and never runs one on a value no policy row could hold.
        """
        policies = conf.POLICIES if isinstance(conf.POLICIES, dict) else {}
        defaults = conf.DEFAULT_POLICY if isinstance(conf.DEFAULT_POLICY, dict) else {}
        values = {**defaults, **(policies.get(name) or {})}
        try:
            row = cls(name=name, **values)
            if values:
                row.clean_fields(exclude=["name"])
                row.clean()
            ResolvedPolicy.from_row(row)
        except (ValidationError, OverflowError, TypeError, ValueError) as exc:
            fields = getattr(exc, "message_dict", None)  # ValidationError: the fields at fault
            logger.error(
                "resilience: invalid default policy values for %r (%s); using built-in ones",
                name,
                ", ".join(sorted(fields)) if fields else type(exc).__name__,
            )
            row = cls(name=name)
        return row

    @classmethod
    def run_schedule(cls, now: datetime | None = None) -> bool:
        """Lift expired kill switches and start or end due maintenance windows; True when
        anything changed. Run by every process's policy refresh thread and ``events.drain()``."""
        now = now or registry.now()
        lifted = cls.release_expired(now)
        return bool(cls.apply_windows(now) or lifted)

    @classmethod
    def apply_windows(cls, now: datetime | None = None) -> int:
        """Start and end the maintenance windows due at ``now``; returns how many changed.

        Each start and end is one conditional UPDATE of the window, so it is recorded once
        (``maintenance_started`` / ``maintenance_ended``, no actor) however many processes
        run this; the policy's ``window_mode`` follows and its version is bumped, so every
        process runs the circuit in the window's mode within ``POLICY_REFRESH_SECONDS``. A
        window that was over before anyone started it is closed without events.
        """
        now = now or registry.now()
        changed = 0
        for policy in cls.objects.filter(window_next_at__lte=now).only("pk", "name"):
            windows = policy.maintenance_windows.filter(ended=False)  # models.maintenance
            for window in windows.order_by("starts_at", "pk"):
                if window.ends_at <= now:
                    changed += window.end(policy.name)
                elif window.starts_at <= now and not window.started:
                    changed += window.start(policy.name)
            policy.reschedule_windows()
        return changed

    def reschedule_windows(self) -> None:
        """Store when this policy's maintenance windows next start or end (what the refresh
        sweep reads)."""
        upcoming = [
            window.ends_at if window.started else window.starts_at
            for window in self.maintenance_windows.filter(ended=False)
        ]
        row = type(self).objects.filter(pk=self.pk)
        value = min(upcoming, default=None)
        if row.exclude(window_next_at=value).exists() or (
            value is None and row.filter(window_next_at__isnull=False).exists()
        ):
            row.update(window_next_at=value)

    @classmethod
    def release_expired(cls, now: datetime | None = None) -> list[str]:
        """Lift every kill switch whose ``forced_until`` is at or before ``now``.

        One conditional UPDATE per circuit decides who lifts it, so however many processes
        run this at the same moment, each circuit gets one ``released`` event, with no actor.
        Runs in every process's policy refresh thread and in ``events.drain()`` (Celery beat,
        ``manage.py resilience drain``). Returns the names released here.
        """
        now = now or registry.now()
        expired = cls.objects.filter(mode=Mode.FORCED_OPEN, forced_until__lte=now)
        released = []
        for pk, name, until in expired.values_list("pk", "name", "forced_until"):
            reason = f"kill switch expired (forced open until {until})"
            with transaction.atomic(), audit(reason=reason, source=RevisionSource.SCHEDULE):
                won = cls.objects.filter(pk=pk, mode=Mode.FORCED_OPEN, forced_until=until).update(
                    mode=Mode.ENFORCED, forced_until=None
                )
                if not won:
                    continue  # another process lifted it a moment ago
                recorder.record_action(
                    name,
                    "released",
                    reason=reason,
                    from_state=Mode.FORCED_OPEN,
                    to_state=cls._engine_state(name),
                )
            released.append(name)
        return released

    @classmethod
    def _engine_state(cls, name: str) -> str:
        """The circuit's state in the backend (what it is once released); "" if unknown."""
        try:
            row = cls.objects.get(name=name)
            return str(get_backend().snapshot(name, ResolvedPolicy.from_row(row).policy)["state"])
        except Exception:  # the release stands; the event just lacks the state
            logger.debug("resilience: no state of %s after release", name, exc_info=True)
            return ""

    # Changes saved inside ``with BreakerPolicy.audit(actor=..., reason=..., source=...):`` are
    # revisions by that actor, for that reason (``resilience.revisions.audit``).
    audit = staticmethod(audit)

    def revert_to(self, revision: Any, actor: Any = None, reason: str = "") -> PolicyRevision:
        """Give this policy the values of ``revision`` (a ``PolicyRevision`` of it, or its
        id) as a new revision, validated like a form edit; a ``policy_changed`` event records
        it. ``ValidationError`` (and nothing saved) when the revision is missing, another
        policy's, changes nothing, or its values no longer validate."""
        return revert(self, revision, actor=actor, reason=reason)

    @classmethod
    def for_circuit(cls, name: str) -> BreakerPolicy:
        """The saved policy of circuit ``name``, else an unsaved one ``from_settings``."""
        return cls.objects.filter(name=name).first() or cls.from_settings(name)

    def _invalidate(self, saved: BreakerPolicy | None) -> None:
        # This process at once, from the values in hand (no query; a partly loaded instance
        # is read again instead), and read again after commit; other processes see the
        # version change within POLICY_REFRESH_SECONDS.
        name = self.name
        if saved is not None and saved.get_deferred_fields():
            registry.invalidate(name)
        else:
            registry.put(name, saved)
        transaction.on_commit(lambda: registry.invalidate(name), robust=True)

    def clean_fields(self, exclude=None) -> None:
        """Like Django's, but inf, 1e400 or "" in a number field is a form error, not a crash,
        and a bool or a fraction (``True``, ``2.5`` from settings) is not silently a whole
        number (Django's ``int()`` would make them 1 and 2)."""
        exclude = set(exclude or ())
        errors: dict[str, Sequence[str | Promise]] = {}
        for field in self._meta.concrete_fields:
            if field.name in exclude or not isinstance(
                field, models.IntegerField | models.FloatField
            ):
                continue
            problem = number_problem(field, getattr(self, field.attname))
            if problem:
                errors[field.name] = problem
        try:
            super().clean_fields(exclude=exclude | set(errors))
        except ValidationError as exc:
            errors.update(exc.message_dict)
        if errors:
            raise ValidationError(errors)

    def clean(self) -> None:
        errors: dict[str, list[str | Promise]] = {}
        recovery, max_recovery = self.recovery_timeout, self.max_recovery_timeout
        if (
            isinstance(recovery, int | float)
            and isinstance(max_recovery, int | float)
            and max_recovery < recovery
        ):
            errors["max_recovery_timeout"] = [
                _("Must be at least the recovery timeout (%(value)s s).") % {"value": recovery}
            ]
        if (
            isinstance(self.retry_backoff_ms, int)
            and isinstance(self.retry_max_backoff_ms, int)
            and self.retry_max_backoff_ms < self.retry_backoff_ms
        ):
            errors["retry_max_backoff_ms"] = [_("Must be at least the retry backoff.")]
        if (
            self.failure_threshold == 0
            and self.failure_rate_threshold == 0
            and self.mode in (Mode.ENFORCED, Mode.MONITOR)
        ):
            errors["failure_threshold"] = [
                _("Enable at least one trip rule (failure threshold or failure rate).")
            ]
        if errors:
            raise ValidationError(errors)

    @property
    def recipients(self) -> list[str]:
        return split_lines(self.alert_recipients)

    @property
    def ignored(self) -> list[str]:
        return split_lines(self.ignore_exceptions)

    @property
    def recorded(self) -> list[str]:
        return split_lines(self.record_exceptions)


# The policy registry caches BreakerPolicy rows; it sits below this module and is handed the model.
registry.bind(BreakerPolicy)
