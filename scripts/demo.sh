#!/usr/bin/env bash
# One command for the demo: set up, migrate, create demo data and run the site (see README).
source "$(dirname "$0")/bootstrap.sh" demo
mkdir -p var/mail
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py demo_setup
ADDR="${DEMO_ADDR:-127.0.0.1:8000}"
if [ -n "${REDIS_URL:-}" ]; then
  echo "==> REDIS_URL is set: shared Redis state, and a Celery worker (with beat) for alerts"
  .venv/bin/celery -A project worker --beat --loglevel=INFO --concurrency=2 &
  worker=$!
  trap 'kill $worker 2>/dev/null' EXIT
else
  echo "==> embedded mode: memory backend, eager Celery, alert e-mails written to var/mail/"
fi
echo "==> open http://$ADDR/ (demo page) and http://$ADDR/admin/ (log in as printed above)"
echo "==> background calls on payments-api, search and demo-upstream start with the first request (DEMO_TRAFFIC=0: none)"
.venv/bin/python manage.py runserver "$ADDR"
