#!/usr/bin/env bash
# Every figure the performance targets name, from one run on this machine, as one table.
#
#   bash bench/all.sh            # full: ~15 min (3 peer rounds of 15 s, two 60 s loops and their drain)
#   QUICK=1 bash bench/all.sh    # short: 5 s wrk, 1 round, 10 s loops, fewer DLT texts (a few minutes)
#   STEPS=peers,probe bash bench/all.sh   # only some steps (peers probe loop paced dlt)
#   bash bench/all.sh summary var/bench/STAMP   # the table of an earlier run again
#
# Steps, each one's raw output under var/bench/<UTC stamp>/:
#   peers  ../shared/bench/run_peers.sh with bench/peers as drop-in targets, only floor-sync,
#          seed-node and smsgate: webhook req/s and p99 under wrk -c32 (peers/: table.md, wrk.tsv)
#   probe  the same servers unloaded: wrk -t1 -c1, one request at a time (probe/)
#   loop   bench/run.sh unpaced: the whole loop, webhook and workers on the same two cores (loop/)
#   paced  bench/run.sh at RATE=500 for 60 s: does the loop keep up (paced/)
#   dlt    bench/dlt_match.py with 10,000 templates (dlt.txt)
# then summary.md: figure, smsgate, peer, ratio, target, met. Exits 1 when a target is missed.
#
# Knobs: QUICK [0], STEPS [all], SHARED_BENCH [../shared/bench], PEER_DURATION [15s], PEER_ROUNDS [3],
# PROBE_DURATION [15s], LOOP_DURATION [60s], PACED_RATE [500], PACED_DURATION [60s],
# DLT_TEMPLATES [10000], DLT_MATCHES [20000], PEERS_RUN_DIR [/tmp/smsbench]; bench/run.sh's own
# knobs (WORKER_CONCURRENCY, WORKER_POOL, WEB_WORKERS, CONNECTIONS...) pass through to both loops.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=.venv/bin/python
SHARED_BENCH=$(cd "${SHARED_BENCH:-../shared/bench}" && pwd)
STEPS=${STEPS:-peers,probe,loop,paced,dlt}

if [ "${QUICK:-0}" = 1 ]; then
  : "${PEER_DURATION:=5s}" "${PEER_ROUNDS:=1}" "${PROBE_DURATION:=5s}" "${LOOP_DURATION:=10s}"
  : "${PACED_DURATION:=10s}" "${DLT_MATCHES:=2000}"
fi
: "${PEER_DURATION:=15s}" "${PEER_ROUNDS:=3}" "${PROBE_DURATION:=15s}" "${LOOP_DURATION:=60s}"
: "${PACED_RATE:=500}" "${PACED_DURATION:=60s}" "${DLT_TEMPLATES:=10000}" "${DLT_MATCHES:=20000}"
: "${PEERS_RUN_DIR:=/tmp/smsbench}"

summarize() {  # summarize RESULTS_DIR : the table, from the raw outputs alone
$PY - "$1" "$PACED_RATE" <<'EOF'
import json
import re
import statistics
import sys
from pathlib import Path

out, paced_rate = Path(sys.argv[1]), float(sys.argv[2])
rows, missed = [], []


def load_json(path):
    return json.loads(path.read_text()) if path.exists() else {}


def wrk_medians(path):
    """Per target: median req/s and median p99 (ms) over the rounds of run_peers.sh's wrk.tsv."""
    runs = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _round, _url, figures = line.split("\t", 3)
            runs.setdefault(name, []).append(json.loads(figures))
    return {
        name: {
            "rps": statistics.median(r["rps"] for r in rs),
            "p99": statistics.median(r["lat_p99_us"] for r in rs) / 1000,
            "rounds": len(rs),
        }
        for name, rs in runs.items()
    }


def probe_p50(path):
    found = re.search(r"^WRKJSON (.*)$", path.read_text(), re.M) if path.exists() else None
    return json.loads(found.group(1))["lat_p50_us"] / 1000 if found else None


def fmt(value, digits=1):
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def row(figure, ours, peer=None, target="", met=None, ratio=None, digits=1):
    """met: True/False, or None when there is no target or the figure is missing."""
    if met is False:
        missed.append(figure)
    rows.append((figure, fmt(ours, digits), fmt(peer, digits), fmt(ratio, 2), target,
                 {True: "yes", False: "**no**", None: "–"}[met]))


def compare(figure, ours, peer, target, at_least=None, at_most=None, digits=1):
    ratio = ours / peer if ours is not None and peer else None
    met = None
    if ratio is not None:
        met = ratio >= at_least if at_least is not None else ratio <= at_most
    row(figure, ours, peer, target, met, ratio, digits)


def absolute(figure, ours, target, at_most=None, below=None, peer=None, digits=1):
    """A target in absolute terms; a peer's figure, when given, is there for context."""
    met = None
    if ours is not None:
        met = ours <= at_most if at_most is not None else ours < below
    row(figure, ours, peer, target, met, ours / peer if ours is not None and peer else None, digits)


peers = wrk_medians(out / "peers" / "wrk.tsv")
ours, floor, seed = peers.get("smsgate", {}), peers.get("floor-sync", {}), peers.get("seed-node", {})
loop, paced = load_json(out / "loop" / "summary.json"), load_json(out / "paced" / "summary.json")

compare("webhook ack req/s (wrk -c32, median)", ours.get("rps"), floor.get("rps"), ">= 0.9x floor-sync", at_least=0.9, digits=0)
compare("webhook ack p99 ms (wrk -c32, median)", ours.get("p99"), floor.get("p99"), "<= 1.5x floor-sync", at_most=1.5, digits=2)
absolute("unloaded webhook p50 ms (wrk -t1 -c1)", probe_p50(out / "probe" / "smsgate.txt"), "<= 3 ms", at_most=3,
         peer=probe_p50(out / "probe" / "floor-sync.txt"), digits=2)
compare("whole loop SMS/s, unpaced (vs seed-node req/s)", loop.get("loop_rate"), seed.get("rps"),
        ">= 1.0x seed-node", at_least=1.0, digits=0)

for name, run in (("unpaced", loop), ("paced", paced)):
    if run:
        clean = run.get("lost") == 0 and run.get("doubled") == 0 and run.get("drained") and run.get("inbound")
        row(f"lost / doubled, {name} ({run.get('inbound')} SMS)", f"{run.get('lost')} / {run.get('doubled')}",
            target="0 / 0, drained", met=bool(clean))
    else:
        row(f"lost / doubled, {name}", None, target="0 / 0, drained")

compare(f"paced: inbound stored/s (offered {paced_rate:.0f}/s)", paced.get("inbound_rate"), paced_rate or None,
        ">= 0.95x offered", at_least=0.95)
compare("paced: replies/s at the sink", paced.get("loop_rate"), paced_rate or None, ">= 0.95x offered", at_least=0.95)
absolute("paced: last reply after the last inbound, s", paced.get("backlog_drain_s"), "<= 2 s", at_most=2, digits=2)
latency = paced.get("latency_ms") or {}
row("paced: inbound -> reply at sink, p50 / p99 ms",
    f"{latency['p50']:.1f} / {latency['p99']:.1f}" if latency else None, target="reported")

for name, run in (("unpaced", loop), ("paced", paced)):
    absolute(f"worker CPU per SMS ms, {name} (handling + delivery)", run.get("worker_cpu_ms_per_sms"), "<= 2 ms",
             at_most=2, digits=2)
rss = [r["web_rss_max_mb"] for r in (loop, paced) if r.get("web_rss_max_mb")]
absolute("web worker RSS MB, largest after the load", max(rss) if rss else None, "< 100 MB", below=100)

# One row per outcome: template_resolve (the call the send path makes), steady state; judged on p99.
dlt = (out / "dlt.txt").read_text() if (out / "dlt.txt").exists() else ""
templates = re.search(r"^(\d+) templates", dlt, re.M)
at = f" at {int(templates.group(1)):,} templates" if templates else ""
for kind in ("hit", "miss"):
    found = re.search(rf"template_resolve {kind}\s.*?mean\s+([\d.]+) µs.*?p99\s+([\d.]+) µs", dlt)
    mean, p99 = (float(found.group(1)) / 1000, float(found.group(2)) / 1000) if found else (None, None)
    met = None if p99 is None else p99 < 0.2
    row(f"DLT match ms{at}, {kind}: mean / p99", f"{mean:.3f} / {p99:.3f}" if found else None,
        target="p99 < 0.2 ms", met=met)

print(f"### smsgate against its targets ({out.name})\n")
print("| figure | smsgate | peer | ratio | target | met |")
print("|---|---:|---:|---:|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
if ours or floor or seed:
    print(f"\nPeers: median of {ours.get('rounds') or floor.get('rounds')} wrk rounds; "
          f"floor-sync {fmt(floor.get('rps'), 0)} req/s, seed-node {fmt(seed.get('rps'), 0)} req/s.")
if loop:
    print(f"Loops: gunicorn sync x{loop['web_workers']}, celery {loop['worker_pool']} x{loop['worker_concurrency']}"
          f"{' + inbound_dispatch' if loop.get('dispatcher') else ''}, wrk -c{loop['connections']}.")
print("\n```\n" + (out / "machine.txt").read_text().rstrip() + "\n```")
print(f"\n{len(missed)} target(s) missed" + (": " + "; ".join(missed) if missed else ""))
sys.exit(1 if missed else 0)
EOF
}

if [ "${1:-}" = summary ]; then
  summarize "${2:?usage: bench/all.sh summary var/bench/STAMP}"
  exit
fi

OUT=var/bench/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
[ -x "$PY" ] || make venv
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
step() { [[ ",$STEPS," == *",$1,"* ]]; }
{
  echo "date_utc: $(date -u +%FT%TZ)"
  echo "loadavg_at_start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the box skews every figure)"
  echo "cpus: $(nproc); commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' + local changes')"
  echo "quick: ${QUICK:-0}; peers: $PEER_ROUNDS x $PEER_DURATION; probe: $PROBE_DURATION; loop: $LOOP_DURATION;" \
    "paced: $PACED_RATE/s x $PACED_DURATION; dlt: $DLT_TEMPLATES templates, $DLT_MATCHES texts"
} >"$OUT/machine.txt"
log "results -> $OUT"

peers_stop() { RUN_DIR=$PEERS_RUN_DIR "$SHARED_BENCH/run_peers.sh" stop 2>>"$OUT/peers.log" || true; }

# The peers stay up after their rounds (--keep) so the probe finds them; stopped by their pid files.
if step peers || step probe; then
  trap peers_stop EXIT
  if step peers; then
    log "peers: floor-sync, seed-node, smsgate ($PEER_ROUNDS x $PEER_DURATION, wrk -c32)"
    TARGETS_DIR=$ROOT/bench/peers OUT_DIR=$ROOT/$OUT/peers RUN_DIR=$PEERS_RUN_DIR \
      DURATION=$PEER_DURATION ROUNDS=$PEER_ROUNDS \
      "$SHARED_BENCH/run_peers.sh" --only 'floor-sync|seed-node|smsgate' --no-micro --keep all \
      >"$OUT/peers.txt" 2>>"$OUT/peers.log" || log "peers: failed, see $OUT/peers.log"
  else
    TARGETS_DIR=$ROOT/bench/peers RUN_DIR=$PEERS_RUN_DIR "$SHARED_BENCH/run_peers.sh" start 2>>"$OUT/peers.log"
  fi
  if step probe; then
    # One connection, one request at a time: the webhook's own latency with nothing queued.
    # Each id is new (bench/inbound.lua numbers them by run), so every request stores a message.
    mkdir -p "$OUT/probe"
    probe() {  # probe NAME URL LUA
      cat "$3" "$SHARED_BENCH/lua/report.lua" >"$OUT/probe/$1.lua"
      BENCH_RUN=probe$(date +%s) WEBHOOK_SECRET=bench-secret RATE='' \
        wrk -t1 -c1 -d"$PROBE_DURATION" --latency -s "$OUT/probe/$1.lua" "$2" >"$OUT/probe/$1.txt" 2>&1 \
        || log "probe $1: wrk failed, see $OUT/probe/$1.txt"
    }
    log "probe: unloaded webhook, wrk -t1 -c1 -d$PROBE_DURATION"
    probe smsgate http://127.0.0.1:8100/webhooks/generic/inbound/ bench/inbound.lua
    probe floor-sync http://127.0.0.1:8001/sms/inbound "$SHARED_BENCH/lua/post_sms.lua"
  fi
  peers_stop
  trap - EXIT
fi

if step loop; then
  log "loop: bench/run.sh unpaced for $LOOP_DURATION"
  DURATION=$LOOP_DURATION BENCH_OUT=$OUT/loop RATE='' bash bench/run.sh >"$OUT/loop.txt" 2>&1 \
    || log "loop: lost, doubled or failed; see $OUT/loop.txt"
fi
if step paced; then
  log "paced: bench/run.sh at $PACED_RATE/s for $PACED_DURATION"
  DURATION=$PACED_DURATION BENCH_OUT=$OUT/paced RATE=$PACED_RATE bash bench/run.sh >"$OUT/paced.txt" 2>&1 \
    || log "paced: lost, doubled or failed; see $OUT/paced.txt"
fi
if step dlt; then
  log "dlt: $DLT_TEMPLATES templates, $DLT_MATCHES texts"
  env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL DJANGO_DEBUG=1 \
    $PY bench/dlt_match.py --templates "$DLT_TEMPLATES" --matches "$DLT_MATCHES" >"$OUT/dlt.txt" 2>&1 \
    || log "dlt: failed, see $OUT/dlt.txt"
fi

summarize "$OUT" | tee "$OUT/summary.md"
