#!/usr/bin/env bash
# Run the site (gunicorn + whitenoise) and a Celery worker until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8000}"
.venv/bin/celery -A workers worker -Q default,gpu --concurrency 1 --prefetch-multiplier 1 -l warning &
WORKER=$!
.venv/bin/gunicorn webapp.wsgi -c python:webapp.gunicorn_conf --bind "127.0.0.1:${PORT}" --workers 2 --worker-class gthread --threads 8 --log-level warning &
WEB=$!
trap 'kill $WORKER $WEB 2>/dev/null; wait' INT TERM EXIT
echo
echo "Loupe is running at http://127.0.0.1:${PORT}/  (admin: http://127.0.0.1:${PORT}/admin/)  Ctrl-C stops it."
wait -n
