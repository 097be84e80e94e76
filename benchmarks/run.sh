#!/usr/bin/env bash
# One command for the benchmarks: a virtualenv with the project and its peers, a private
# redis-server (started and stopped by the harness), every figure written to benchmarks/results/.
# Usage: benchmarks/run.sh [--quick|--smoke] [--only SECTION...] [--out DIR]
#        benchmarks/run.sh hanging [--seconds S] [--out DIR]   (the hanging-upstream scenario)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV=benchmarks/.venv
PYTHON_BIN="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV with $($PYTHON_BIN --version)"
  "$PYTHON_BIN" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat pyproject.toml benchmarks/requirements.txt | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "==> installing django-resilience[redis] and the peers into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[redis]" -r benchmarks/requirements.txt
  touch "$stamp"
fi

if ! command -v redis-server >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "==> apt-get install redis-server (the harness starts its own, on a free loopback port)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

if [ "${1:-}" = hanging ]; then
  shift
  exec "$VENV/bin/python" -m benchmarks.hanging "$@"
fi
exec "$VENV/bin/python" -m benchmarks "$@"
