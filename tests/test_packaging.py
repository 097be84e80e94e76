"""Build the wheel, install it into a fresh virtualenv, and run check + migrate there."""

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.packaging, pytest.mark.slow]


def run(*cmd, **kwargs):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600, **kwargs)


def test_wheel_installs_and_migrates(tmp_path):
    run(sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(ROOT))
    wheel = next((tmp_path / "dist").glob("django_resilience-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "resilience/py.typed" in names
    assert "resilience/migrations/0001_initial.py" in names
    assert any(n.startswith("resilience/templates/") for n in names)
    assert not any(n.startswith(("tests/", "project/")) for n in names)

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    run(str(venv / "bin" / "pip"), "install", "-q", str(wheel))
    site = tmp_path / "site"
    site.mkdir()
    (site / "minimal_settings.py").write_text(
        textwrap.dedent(
            f"""
            SECRET_KEY = "x"
            INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "resilience"]
            DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3",
                                       "NAME": "{tmp_path / "db.sqlite3"}"}}}}
            USE_TZ = True
            """
        )
    )
    env = {
        "PYTHONPATH": str(site),
        "DJANGO_SETTINGS_MODULE": "minimal_settings",
        "PATH": "/usr/bin:/bin",
    }
    admin = str(venv / "bin" / "django-admin")
    run(admin, "check", cwd=tmp_path, env=env)
    out = run(admin, "migrate", cwd=tmp_path, env=env).stdout
    assert "Applying resilience.0001_initial... OK" in out
