"""Validators shared by the models, the system checks and the admin."""

from __future__ import annotations

import math
import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

# Letters, digits and ``. _ : -``: enough for "payments-api" and "http:api.example.com:443",
# and nothing that could break a Redis key, a hash tag ({}), a glob (*) or a header line.
CIRCUIT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,99}")  # use fullmatch, never match
DOTTED_PATH_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


def validate_circuit_name(value: str) -> None:
    if not isinstance(value, str) or not CIRCUIT_NAME_RE.fullmatch(value):
        raise ValidationError(
            _(
                "A circuit name is 1 to 100 characters: letters, digits, '.', '_', ':' and '-', "
                "starting with a letter or digit."
            ),
            code="invalid_circuit_name",
        )


def validate_finite(value: float) -> None:
    try:
        finite = math.isfinite(float(value))
    except (TypeError, ValueError):
        finite = False
    if not finite:
        raise ValidationError(_("Enter a finite number."), code="not_finite")


def split_lines(value: str) -> list[str]:
    """Entries of a one-per-line (or comma separated) text field, stripped, empties dropped."""
    return [part.strip() for part in re.split(r"[\n,;]", value or "") if part.strip()]


def validate_exception_paths(value: str) -> None:
    errors = []
    for path in split_lines(value):
        if len(path) > 200 or not DOTTED_PATH_RE.fullmatch(path):
            errors.append(
                ValidationError(
                    _("%(path)s is not a dotted path such as requests.exceptions.Timeout."),
                    code="invalid_path",
                    params={"path": path[:200]},
                )
            )
            continue
        try:
            obj = import_string(path)
        except ImportError:
            errors.append(
                ValidationError(
                    _("%(path)s cannot be imported."), code="unimportable", params={"path": path}
                )
            )
            continue
        if not (isinstance(obj, type) and issubclass(obj, BaseException)):
            errors.append(
                ValidationError(
                    _("%(path)s is not an exception class."),
                    code="not_exception",
                    params={"path": path},
                )
            )
    if errors:
        raise ValidationError(errors)


def validate_email_list(value: str) -> None:
    errors = []
    for address in split_lines(value):
        if len(address) > 254 or any(ord(c) < 32 for c in address):
            errors.append(ValidationError(_("An e-mail address is too long or malformed.")))
            continue
        try:
            validate_email(address)
        except ValidationError:
            errors.append(
                ValidationError(
                    _("%(address)s is not a valid e-mail address."),
                    code="invalid_email",
                    params={"address": address},
                )
            )
    if errors:
        raise ValidationError(errors)
