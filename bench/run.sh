#!/usr/bin/env bash
# Load benchmark: wrk drives inbound webhooks at gunicorn (4 sync workers) on Postgres
# and Redis with real Celery workers and a local gateway sink; then every inbound must
# have exactly one reply at the sink.
#
#   bash bench/run.sh                    # 60 s, 16 connections, workers busy during the load
#   WORKERS=after bash bench/run.sh      # the webhook alone under load; workers drain afterwards
#   RATE=50 bash bench/run.sh            # paced at 50 webhooks/s instead of as fast as possible
#   DURATION=30s CONNECTIONS=32 bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-60s}
CONNECTIONS=${CONNECTIONS:-16}
WORKERS=${WORKERS:-during}
WEB_PORT=${WEB_PORT:-8088}
SINK_PORT=${SINK_PORT:-8099}
PY=.venv/bin/python

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk"; exit 2; }
[ -x "$PY" ] || make venv

export DJANGO_SECRET_KEY=bench-secret-key DJANGO_ALLOWED_HOSTS=127.0.0.1
export DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/smsgate_bench}
export REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/3}
export CELERY_BROKER_URL=${BENCH_BROKER_URL:-redis://127.0.0.1:6379/4}
export WEBHOOK_SECRET=bench-secret PUBLIC_BASE_URL=http://127.0.0.1:$WEB_PORT LOG_LEVEL=WARNING
export BENCH_RUN=$(date +%s) CONNECTIONS RATE=${RATE:-}
mkdir -p var
SINK_OUT=var/bench-sink-$BENCH_RUN.jsonl

psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='smsgate_bench'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE smsgate_bench" >/dev/null
$PY manage.py migrate --noinput -v0
$PY manage.py collectstatic --noinput -v0
$PY manage.py seed_demo >/dev/null
$PY manage.py shell -c "
from commands.models import Shortcode
Shortcode.objects.filter(number='57675').update(provider='generic', dlt_bound=False,
    provider_config={'outbound_url': 'http://127.0.0.1:$SINK_PORT/send'},
    inbound_limit_per_minute=0, max_mps=10000)
"
redis-cli -n "${CELERY_BROKER_URL##*/}" FLUSHDB >/dev/null

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

$PY bench/sink.py --port "$SINK_PORT" --out "$SINK_OUT" & pids+=($!)
.venv/bin/gunicorn smsgate.wsgi -w 4 -b 127.0.0.1:$WEB_PORT --log-level warning & pids+=($!)
start_workers() {
  .venv/bin/celery -A smsgate worker -c 4 -l WARNING --without-gossip --without-mingle >var/bench-worker.log 2>&1 &
  pids+=($!)
  .venv/bin/celery -A smsgate beat -l WARNING -s var/bench-beat >var/bench-beat.log 2>&1 & pids+=($!)
}
[ "$WORKERS" = "after" ] || start_workers
sleep 4

echo "== wrk: $DURATION, $CONNECTIONS connections, ${RATE:-unpaced} requests/s, run $BENCH_RUN"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/inbound.lua \
  "http://127.0.0.1:$WEB_PORT/webhooks/generic/inbound/" 2>var/bench-errors.log | tee var/bench-wrk.txt
echo "non-200 answers: $(wc -l < var/bench-errors.log)"
[ "$WORKERS" = "after" ] && start_workers

echo "== exactly one reply per inbound?"
$PY bench/check.py --run "$BENCH_RUN" --sink "$SINK_OUT"
