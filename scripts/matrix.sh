#!/usr/bin/env bash
# The Django version matrix (noxfile.py): one nox session per supported Django, each in its own
# virtualenv under .nox/, then a summary. The newest Django runs the whole suite, the others the
# core subset (README, "Tested versions"). A session whose Python is missing is SKIPPED: said in
# banners, never counted as passed; RESILIENCE_MATRIX_STRICT=1 makes a skip fail the run.
# Fails when a session fails. Extra arguments go to nox (scripts/matrix.sh -s django-4.2).
source "$(dirname "$0")/bootstrap.sh" dev  # .venv with nox (the dev extra)
install_test_tools

mkdir -p var
report=var/matrix-report.json
rm -f "$report"
started=$SECONDS
status=0
.venv/bin/nox --report "$report" "$@" || status=$?
.venv/bin/python - "$report" "$((SECONDS - started))" <<'PY' || status=1
import json
import os
import sys

path, seconds = sys.argv[1], int(sys.argv[2])
try:
    with open(path) as f:
        sessions = json.load(f)["sessions"]
except (OSError, ValueError, KeyError) as exc:
    sys.exit(f"!!! no nox report ({exc}): the matrix did not run")
strict = os.environ.get("RESILIENCE_MATRIX_STRICT") == "1"
bar = "!" * 78
print(f"\n==> Django version matrix: {len(sessions)} session(s) in {seconds // 60} min {seconds % 60} s")
for session in sessions:
    result = {"success": "passed", "failed": "FAILED", "skipped": "SKIPPED"}.get(
        session["result"], session["result"].upper()
    )
    took = f"{session.get('duration') or 0:.0f} s"
    reason = f" ({session['reason']})" if session.get("reason") else ""
    print(f"    {session['name']:<12} {result:<8} {took:>7}{reason}")
skipped = [s["name"] for s in sessions if s["result"] == "skipped"]
failed = [s["name"] for s in sessions if s["result"] not in ("success", "skipped")]
for name in skipped:
    print(f"{bar}\n!!! {name} was SKIPPED: that Django version was NOT tested in this run\n{bar}")
if failed:
    print(f"!!! matrix FAILED: {', '.join(failed)}")
sys.exit(1 if failed or (strict and skipped) else 0)
PY
exit "$status"
