#!/usr/bin/env bash
# The whole loop under load: wrk drives inbound webhooks at gunicorn on Postgres and Redis,
# real Celery workers handle them and send the replies to a local gateway sink; then every
# inbound must have exactly one reply at the sink (bench/check.py).
#
#   bash bench/run.sh                    # 60 s, 16 connections, workers busy during the load
#   WORKERS=after bash bench/run.sh      # the webhook alone under load; workers drain afterwards
#   RATE=500 bash bench/run.sh           # paced at 500 webhooks/s instead of as fast as possible
#   DURATION=30s CONNECTIONS=32 bash bench/run.sh
#
# Knobs: DURATION [60s] CONNECTIONS [16] THREADS [2] (wrk), RATE [unpaced], WORKERS [during|after],
# WEB_WORKERS [4] (gunicorn sync), WORKER_POOL [prefork], WORKER_CONCURRENCY [2], DRAIN_WAIT [900] (s),
# WEB_PORT [8088], SINK_PORT [8099], BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_BROKER_URL,
# BENCH_OUT [var/bench/loop-<run>]: where wrk.txt, check.txt, sink.jsonl, the logs and summary.json land.
#
# Besides check.py's figures (lost, doubled, rates, inbound -> reply latency) it reports the
# worker side's CPU per message (utime+stime of the Celery worker, its pool children and the
# inbound dispatcher when the product has one, from the workers' start to the drained end,
# divided by the inbound SMS of the run) and the largest gunicorn worker RSS after the load.
# Exits with check.py's status: 1 when a message was lost or doubled.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-60s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-during}
WEB_WORKERS=${WEB_WORKERS:-4}
# One prefork child per core: the two cores also carry gunicorn, Postgres, Redis, wrk and the
# sink, so more children only queue for the same cores (and each holds a Django process's memory).
WORKER_CONCURRENCY=${WORKER_CONCURRENCY:-2}
WORKER_POOL=${WORKER_POOL:-prefork}
DRAIN_WAIT=${DRAIN_WAIT:-900}
WEB_PORT=${WEB_PORT:-8088}
SINK_PORT=${SINK_PORT:-8099}
PY=.venv/bin/python

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk"; exit 2; }
[ -x "$PY" ] || make venv

export DJANGO_SECRET_KEY=bench-secret-key DJANGO_ALLOWED_HOSTS=127.0.0.1
export DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/smsgate_bench}
export REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/11}
export CELERY_BROKER_URL=${BENCH_BROKER_URL:-redis://127.0.0.1:6379/12}
export WEBHOOK_SECRET=bench-secret PUBLIC_BASE_URL=http://127.0.0.1:$WEB_PORT LOG_LEVEL=WARNING
# The sink is the shortcode's outbound URL: an origin the deployment must allow.
export GATEWAY_ALLOWED_ORIGINS=http://127.0.0.1:$SINK_PORT
BENCH_RUN=$(date +%s)
export BENCH_RUN CONNECTIONS THREADS RATE=${RATE:-}
OUT=${BENCH_OUT:-var/bench/loop-$BENCH_RUN}
mkdir -p "$OUT"
SINK_OUT=$OUT/sink.jsonl

DB_NAME=${DATABASE_URL##*/}
DB_NAME=${DB_NAME%%\?*}
psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE $DB_NAME" >/dev/null
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
# The inbound dispatcher is one more worker-side process, in the products that have it.
DISPATCHER=0
$PY manage.py help inbound_dispatch >/dev/null 2>&1 && DISPATCHER=1

pids=()
celery_pid=""
dispatch_pid=""
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

descendants() {  # descendants PID... : the pids and all their children, recursively
  local pid
  for pid in "$@"; do
    echo "$pid"
    # shellcheck disable=SC2046
    descendants $(ps -o pid= --ppid "$pid")
  done
}

cpu_ticks() {  # cpu_ticks PID... : utime+stime (own and reaped children's) of these process trees
  local pid stat total=0
  local -a field
  for pid in $(descendants "$@"); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    read -r -a field <<<"${stat##*) }"  # from field 3 (state) on: comm may hold spaces
    total=$((total + field[11] + field[12] + field[13] + field[14]))
  done
  echo "$total"
}

rss_max_kb() {  # rss_max_kb PID... : the largest VmRSS among these processes
  local pid kb max=0
  for pid in "$@"; do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
    [ -n "$kb" ] && [ "$kb" -gt "$max" ] && max=$kb
  done
  echo "$max"
}

wait_http() {  # wait_http URL SECONDS
  local i
  for ((i = 0; i < $2 * 4; i++)); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.25
  done
  echo "no answer from $1 after $2 s"; exit 2
}

$PY bench/sink.py --port "$SINK_PORT" --out "$SINK_OUT" & pids+=($!)
.venv/bin/gunicorn smsgate.wsgi -w "$WEB_WORKERS" -b "127.0.0.1:$WEB_PORT" --no-control-socket \
  --log-level warning >"$OUT/web.log" 2>&1 &
web_pid=$!
pids+=("$web_pid")

start_workers() {
  .venv/bin/celery -A smsgate worker --pool "$WORKER_POOL" -c "$WORKER_CONCURRENCY" -l WARNING \
    --without-gossip --without-mingle >"$OUT/worker.log" 2>&1 &
  celery_pid=$!
  pids+=("$celery_pid")
  if [ "$DISPATCHER" = 1 ]; then
    $PY manage.py inbound_dispatch >"$OUT/dispatch.log" 2>&1 &
    dispatch_pid=$!
    pids+=("$dispatch_pid")
  fi
  .venv/bin/celery -A smsgate beat -l WARNING -s "$OUT/beat-schedule" >"$OUT/beat.log" 2>&1 & pids+=($!)
  # Ready when it answers a ping: a worker still starting would be billed for none of the load.
  local i
  for ((i = 0; i < 30; i++)); do
    .venv/bin/celery -A smsgate inspect ping --timeout 1 >/dev/null 2>&1 && break
    sleep 1
  done
  celery_ticks0=$(cpu_ticks "$celery_pid")
  dispatch_ticks0=$(cpu_ticks $dispatch_pid)
}
[ "$WORKERS" = "after" ] || start_workers
wait_http "http://127.0.0.1:$WEB_PORT/health/live" 60
wait_http "http://127.0.0.1:$SINK_PORT/" 10

echo "== wrk: $DURATION, $CONNECTIONS connections, ${RATE:-unpaced} requests/s, run $BENCH_RUN -> $OUT"
echo "   web: gunicorn sync x$WEB_WORKERS; workers: celery $WORKER_POOL x$WORKER_CONCURRENCY" \
  "$([ "$DISPATCHER" = 1 ] && echo "+ inbound_dispatch"), $WORKERS the load"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/inbound.lua \
  "http://127.0.0.1:$WEB_PORT/webhooks/generic/inbound/" 2>"$OUT/errors.log" | tee "$OUT/wrk.txt"
echo "non-200 answers: $(wc -l <"$OUT/errors.log")"
web_rss_kb=$(rss_max_kb $(ps -o pid= --ppid "$web_pid"))
[ "$WORKERS" = "after" ] && start_workers

echo "== exactly one reply per inbound?"
check_status=0
$PY bench/check.py --run "$BENCH_RUN" --sink "$SINK_OUT" --wait "$DRAIN_WAIT" --json "$OUT/check.json" \
  | tee "$OUT/check.txt" || check_status=$?
celery_ticks=$(($(cpu_ticks "$celery_pid") - celery_ticks0))
dispatch_ticks=$(($(cpu_ticks $dispatch_pid) - dispatch_ticks0))

$PY - "$OUT" "$celery_ticks" "$dispatch_ticks" "$(getconf CLK_TCK)" "$web_rss_kb" <<EOF
import json, re, sys
from pathlib import Path

out, hz, rss_kb = Path(sys.argv[1]), int(sys.argv[4]), int(sys.argv[5])
celery_s, dispatch_s = int(sys.argv[2]) / hz, int(sys.argv[3]) / hz
units = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ms(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * units[unit]


wrk = (out / "wrk.txt").read_text()
summary = json.loads((out / "check.json").read_text()) if (out / "check.json").exists() else {}
summary.update(
    mode="paced" if "$RATE" else "unpaced",
    rate_offered=float("$RATE") if "$RATE" else None,
    duration="$DURATION",
    connections=$CONNECTIONS,
    web_workers=$WEB_WORKERS,
    worker_pool="$WORKER_POOL",
    worker_concurrency=$WORKER_CONCURRENCY,
    dispatcher=bool($DISPATCHER),
    workers="$WORKERS",
    webhook_rps=float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1)),
    webhook_p50_ms=ms(re.search(r"^\s+50%\s+(\S+)", wrk, re.M).group(1)),
    webhook_p99_ms=ms(re.search(r"^\s+99%\s+(\S+)", wrk, re.M).group(1)),
    webhook_non_200=sum(1 for _ in open(out / "errors.log")),
    worker_cpu_s=celery_s + dispatch_s,
    worker_cpu_split_s={"celery": celery_s, "inbound_dispatch": dispatch_s},
    web_rss_max_mb=rss_kb / 1024,
)
inbound = summary.get("inbound") or 0
summary["worker_cpu_ms_per_sms"] = summary["worker_cpu_s"] * 1000 / inbound if inbound else None
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
print(f"worker CPU: {summary['worker_cpu_s']:.2f} s (celery and its pool {celery_s:.2f} s, "
      f"inbound_dispatch {dispatch_s:.2f} s) for {inbound} SMS"
      + (f" = {summary['worker_cpu_ms_per_sms']:.2f} ms per SMS" if inbound else ""))
print(f"largest gunicorn worker RSS after the load: {summary['web_rss_max_mb']:.1f} MB")
EOF
exit "$check_status"
