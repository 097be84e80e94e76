"""The release artefacts: sdist and wheel built from a clean copy of the sources, checked with
twine, their contents listed; the wheel installed into a fresh virtualenv, where a new project
follows docs/getting-started.md and gets its first alert e-mail from a real SMTP server.

The build reads a copy of the files git knows (tracked, and new files not ignored), never the
working tree itself: a build there leaves ``django_resilience.egg-info`` behind, which pip then
takes for an installed django-resilience whenever the tree is on ``PYTHONPATH``.
"""

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import resilience
from tests.support.smtp import SMTPServer

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = ("templates/", "static/", "migrations/", "backends/lua/", "py.typed")
pytestmark = [pytest.mark.packaging, pytest.mark.slow]


def clean_env(**extra):
    """This process's environment without what points at the sources or the suite's settings."""
    drop = ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "VIRTUAL_ENV", "PIP_USER")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def run(*cmd, **kwargs):
    kwargs.setdefault("env", clean_env())
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{cmd}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def source_files():
    listed = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    return [name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """``python -m build`` (sdist, then the wheel from the sdist) from a clean copy."""
    tmp = tmp_path_factory.mktemp("release")
    src = tmp / "src"
    for name in source_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    run(sys.executable, "-m", "build", "--outdir", str(tmp / "dist"), str(src))
    [sdist] = (tmp / "dist").glob("django_resilience-*.tar.gz")
    [wheel] = (tmp / "dist").glob("django_resilience-*.whl")
    return sdist, wheel


def package_data_in_sources():
    """Every non-Python file of the package, and the migrations (paths inside the package)."""
    return {
        name
        for name in source_files()
        if name.startswith("resilience/")
        and (not name.endswith(".py") or "/migrations/" in name)
        and not name.endswith("/__init__.py")
    }


def test_twine_check_passes(dist):
    out = run(sys.executable, "-m", "twine", "check", "--strict", *map(str, dist)).stdout
    assert out.count("PASSED") == 2, out


def test_wheel_has_the_package_data_and_nothing_else(dist):
    _sdist, wheel = dist
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = package_data_in_sources()
    assert expected <= names, sorted(expected - names)
    for kind in PACKAGE_DATA:
        assert any(n.startswith(f"resilience/{kind}") for n in names), kind
    assert {n.split("/")[0] for n in names} == {
        "resilience",
        f"django_resilience-{resilience.__version__}.dist-info",
    }
    metadata = zipfile.ZipFile(wheel).read(
        f"django_resilience-{resilience.__version__}.dist-info/METADATA"
    )
    assert f"Version: {resilience.__version__}\n" in metadata.decode()
    assert "License-Expression: BSD-3-Clause" in metadata.decode()
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_sdist_has_the_sources_and_no_local_files(dist):
    sdist, _wheel = dist
    top = f"django_resilience-{resilience.__version__}/"
    names = {n.removeprefix(top) for n in tarfile.open(sdist).getnames()}
    assert package_data_in_sources() <= names
    assert {"README.md", "LICENSE", "pyproject.toml"} <= names
    for local in (".venv", "var/", "build/", ".git/", "project/", "benchmarks/"):
        assert not any(n.startswith(local) for n in names), local


# docs/getting-started.md, followed as written: its settings and its shell snippet are read
# from the page (the blocks after "<!-- walkthrough:NAME -->"); only the mail server's port is
# this test's own (a real aiosmtpd server on a free port instead of the page's 8025).
GETTING_STARTED = ROOT / "docs" / "getting-started.md"


def walkthrough(name):
    """The fenced code block that follows ``<!-- walkthrough:NAME -->`` on the page."""
    text = GETTING_STARTED.read_text()
    match = re.search(rf"<!-- walkthrough:{name} -->\n```\w*\n(.*?)\n```", text, re.S)
    assert match, f"docs/getting-started.md has no walkthrough:{name} block"
    return match.group(1)


def test_a_new_project_following_getting_started_gets_its_first_alert(dist, tmp_path):
    _sdist, wheel = dist
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    run(str(venv / "bin" / "pip"), "install", "-q", str(wheel))
    python = str(venv / "bin" / "python")
    version = run(
        python,
        "-c",
        "import resilience; print(resilience.__file__, resilience.__version__)",
        cwd=tmp_path,  # not the sources' directory
    )
    location, installed = version.stdout.split()
    assert location.startswith(str(venv)) and installed == resilience.__version__

    env = clean_env(PATH=f"{venv / 'bin'}:/usr/bin:/bin", VIRTUAL_ENV=str(venv))  # activated
    run("django-admin", "startproject", "mysite", cwd=tmp_path, env=env)
    site = tmp_path / "mysite"
    settings = walkthrough("settings")
    assert "EMAIL_PORT = 8025" in settings
    newer = run("python", "-c", "import django; print(django.VERSION >= (6, 1))", env=env)
    if newer.stdout.strip() == "True":  # startproject wrote MAILERS: the page's other block
        lines = [line for line in settings.splitlines() if not line.startswith("EMAIL_")]
        settings = "\n".join(lines) + "\n" + walkthrough("mailers")
        assert '"port": 8025' in settings
    with SMTPServer() as smtp:
        with open(site / "mysite" / "settings.py", "a") as file:
            port = settings.replace("EMAIL_PORT = 8025", f"EMAIL_PORT = {smtp.port}")
            file.write("\n" + port.replace('"port": 8025', f'"port": {smtp.port}'))
        out = run("python", "manage.py", "migrate", cwd=site, env=env).stdout
        assert "Applying resilience.0001_initial... OK" in out
        check = run("python", "manage.py", "check", cwd=site, env=env)
        assert "System check identified no issues" in check.stdout, check.stdout + check.stderr
        shell = run("python", "manage.py", "shell", "-c", walkthrough("trip"), cwd=site, env=env)
        assert shell.stdout.strip().splitlines()[-1] == "open"
        assert "Circuit payments-api opened (closed -> open)" in shell.stderr
        # The shell has exited: the alert went out before it did, on the first try.
        assert smtp.attempts == 1
        [message] = smtp.messages

    assert message["Subject"] == "[resilience] Circuit opened: payments-api"
    assert message["To"] == "oncall@example.com"
    assert message["From"] == "resilience@example.com"
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Last error:     ConnectionError: payments API down" in text
    # The policy's page, or the event's when the writer stored it before the policy row was
    # created (both in the background; seen on a loaded machine).
    assert re.search(
        r"\nAdmin: +http://127\.0\.0\.1:8000/admin/resilience/"
        r"(breakerpolicy|circuitevent)/1/change/\n",
        text,
    ), text
