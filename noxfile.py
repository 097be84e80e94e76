"""The Django version matrix: one nox session per supported Django (README, *Tested versions*).

    nox                          # the matrix; a session whose Python is missing is SKIPPED, loudly
    nox -s django-6.1            # one session
    nox -s django-4.2 -- -k admin    # pytest arguments after --
    nox -s full                  # the newest Django with every test but browser and packaging

Each session installs ``.[test]`` with that Django into its own virtualenv (``.nox/``) and runs
pytest on SQLite (or on ``DATABASE_URL``): the core subset, without the browser, packaging and
slow tests (about 2 minutes a session). ``.ci/run`` runs the matrix after ``scripts/test.sh``,
which runs the whole suite on the Django that pip resolves for ``.venv``. ``full`` takes about
7 minutes more and is run by hand (docs/releasing.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

CORE = ["-m", "not browser and not packaging and not slow"]
BROAD = ["-m", "not browser and not packaging"]
# Django series -> the Python it runs on. Django 6.x needs Python 3.12+.
MATRIX = {"4.2": "3.11", "5.2": "3.11", "6.0": "3.12", "6.1": "3.13"}
NEWEST = "6.1"

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


def define(name: str, series: str, version: str, selection: list[str]) -> None:
    python = find_python(version)

    if python is None:

        @nox.session(name=name, python=False)
        def missing(session: nox.Session) -> None:
            banner(f"{name} SKIPPED: no Python {version} here, Django {series} NOT tested")
            session.skip(f"no Python {version} interpreter found")

        return

    @nox.session(name=name, python=python)
    def tests(session: nox.Session) -> None:
        # django-health-check 4 (resilience.health_check) needs Django 5.2+.
        extras = "test,health-check" if tuple(map(int, series.split("."))) >= (5, 2) else "test"
        session.install(f".[{extras}]", f"django=={series}.*")
        got = session.run(
            "python", "-c", "import django; print(django.get_version())", silent=True
        ).strip()
        if not got.startswith(f"{series}."):
            session.error(f"wanted Django {series}, pip installed {got}")
        session.log(f"Django {got} on Python {version} ({python})")
        session.run("python", "-m", "pytest", *selection, *session.posargs)


for _series, _version in MATRIX.items():
    define(f"django-{_series}", _series, _version, CORE)
define("full", NEWEST, MATRIX[NEWEST], BROAD)
