"""The Django version matrix: one nox session per supported Django (README, *Tested versions*).

    scripts/matrix.sh                # what .ci/run runs after scripts/test.sh: nox + a summary
    nox                              # the same sessions, without the summary
    nox -s django-6.1                # one session
    nox -s django-4.2 -- -k admin    # pytest arguments after --

Each session installs ``.[test]`` (``.[test,health-check]`` from Django 5.2 on) with that
Django into its own virtualenv (``.nox/``) and runs pytest on SQLite (or on ``DATABASE_URL``):

- the newest Django (``NEWEST``) runs the whole suite: browser (Chromium), packaging and slow
  tests included;
- the others run the core subset (``CORE``): the tests of what touches Django (models,
  migrations, admin, e-mail and alerts, events, views, middleware, commands, checks, the
  clients' adapters, security), without the browser, packaging and slow tests, and without
  the folders that exercise only the engine and Redis (``engine/``, ``backends/``,
  ``isolation/``, ``outages/``), whose code does not depend on the Django version.

A session whose Python is missing is SKIPPED: a banner says so when it runs, and
scripts/matrix.sh repeats it in the summary (``RESILIENCE_MATRIX_STRICT=1`` makes it fail).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

# Django series -> the Python it runs on. Django 6.x needs Python 3.12+.
MATRIX = {"4.2": "3.11", "5.2": "3.11", "6.0": "3.12", "6.1": "3.13"}
NEWEST = "6.1"
CORE = [
    "-m",
    "not browser and not packaging and not slow",
    *(f"--ignore=tests/{folder}" for folder in ("engine", "backends", "isolation", "outages")),
]

nox.options.sessions = [f"django-{series}" for series in MATRIX]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False  # reported below, session by session


def find_python(version: str) -> str | None:
    """A working ``python<version>``: on PATH, in pyenv's versions, or in /usr (a pyenv shim
    for a version that is not selected exists on PATH but fails, hence the run)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [
        shutil.which(f"python{version}"),
        *sorted(map(str, pyenv.glob(f"{version}.*/bin/python{version}")), reverse=True),
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            ok = subprocess.run(  # noqa: S603 (an interpreter path we found, no shell)
                [candidate, "-c", "import venv, ensurepip"], capture_output=True, check=False
            )
            if ok.returncode == 0:
                return candidate
    return None


def banner(message: str) -> None:
    line = "!" * 78
    print(f"\n{line}\n!!! {message}\n{line}\n", file=sys.stderr, flush=True)


def define(series: str, version: str) -> None:
    name = f"django-{series}"
    python = find_python(version)

    if python is None:

        @nox.session(name=name, python=False)
        def missing(session: nox.Session) -> None:
            banner(f"{name} SKIPPED: no Python {version} here, Django {series} NOT tested")
            session.skip(f"no Python {version} interpreter found")

        return

    newest = series == NEWEST
    # django-health-check 4 (resilience.health_check) needs Django 5.2+.
    extras = "test,health-check" if tuple(map(int, series.split("."))) >= (5, 2) else "test"
    selection = [] if newest else CORE

    @nox.session(name=name, python=python)
    def tests(session: nox.Session) -> None:
        session.install(f".[{extras}]", f"django=={series}.*")
        got = session.run(
            "python", "-c", "import django; print(django.get_version())", silent=True
        ).strip()
        if not got.startswith(f"{series}."):
            session.error(f"wanted Django {series}, pip installed {got}")
        what = "the whole suite" if newest else "the core subset"
        session.log(f"Django {got} on Python {version} ({python}): {what}")
        session.run("python", "-m", "pytest", *selection, *session.posargs)


for _series, _version in MATRIX.items():
    define(_series, _version)
