#!/usr/bin/env bash
# One command for the whole test suite: set up, then run it on SQLite and on PostgreSQL.
# Extra arguments go to pytest (e.g. scripts/test.sh -k admin).
source "$(dirname "$0")/bootstrap.sh" dev
install_test_tools

echo "==> lint"
lint=0
.venv/bin/ruff check . || lint=1
.venv/bin/ruff format --check . || lint=1
.venv/bin/mypy || lint=1  # the resilience package, configured in pyproject.toml
.venv/bin/lint-imports --no-cache || lint=1  # layering contracts: pyproject.toml [tool.importlinter]
# The documentation site (mkdocs.yml): a broken link or an unresolvable API name fails.
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet || lint=1

echo "==> pytest on SQLite"
.venv/bin/python -m pytest "$@"

PG_URL="${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if .venv/bin/python - "$PG_URL" <<'PY'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1].replace("postgres://", "postgresql://"), connect_timeout=3).close()
except Exception as exc:
    print(f"PostgreSQL unreachable: {exc}")
    sys.exit(1)
PY
then
  echo "==> pytest on PostgreSQL ($PG_URL)"
  DATABASE_URL="$PG_URL" .venv/bin/python -m pytest -m "not browser and not packaging" "$@"
else
  echo "!!! ====================================================================="
  echo "!!! PostgreSQL is NOT reachable at $PG_URL: the PostgreSQL run was SKIPPED"
  echo "!!! ====================================================================="
fi

if [ "$lint" -ne 0 ]; then
  echo "!!! lint failed (see the ruff, mypy, lint-imports and mkdocs output above)"
  exit 1
fi
