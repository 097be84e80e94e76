"""Run ``manage.py resilience`` in the test process: its output, its JSON, its exit status."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from resilience.management.commands.resilience import Command


def run(*args):
    """``call_command("resilience", *args)``: what it wrote to stdout."""
    out = StringIO()
    call_command("resilience", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def run_json(*args):
    return json.loads(run(*args, "--json"))


def exit_code(capsys, *args):
    """Run as from the command line; returns (exit status, stderr)."""
    with pytest.raises(SystemExit) as info:
        Command().run_from_argv(["manage.py", "resilience", *args])
    return info.value.code, capsys.readouterr().err
