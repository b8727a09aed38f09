"""After a load run: every inbound of the run must have exactly one reply, sent once to the sink.

python bench/check.py --run RUN_ID --sink var/bench-sink.jsonl [--wait 900] [--json summary.json]

Waits until the workers have drained the run (no inbound left `received`, no reply left
`queued` or `sending`), then counts:
- lost: an inbound with no reply, or a reply the sink never got;
- doubled: an inbound with more than one reply, or a reply the sink got more than once;
and, from the sink's arrival times against each inbound's stored time (one clock, one machine):
- the rate inbound SMS were stored at, and the rate their replies reached the sink
  (replies / first inbound stored .. last reply arrived): the whole loop's SMS/s;
- the backlog left when the load stopped (last reply arrived - last inbound stored);
- the inbound -> reply-at-the-sink latency, p50 / p99 / max.
Exits 1 when anything was lost or doubled, or the run stored nothing.
"""

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsgate.settings")

import django  # noqa: E402

django.setup()

from django.db.models import Count  # noqa: E402

from delivery.models import Message  # noqa: E402
from delivery.statuses import Direction, Status  # noqa: E402


def run_drain_wait(inbound, seconds: float) -> bool:
    """Block until the run has nothing left to handle or send; False if `seconds` ran out first."""
    deadline = time.monotonic() + seconds
    while True:
        pending = inbound.filter(status=Status.RECEIVED).exists()
        unsent = Message.objects.filter(in_reply_to__in=inbound, status__in=[Status.QUEUED, Status.SENDING]).exists()
        if not pending and not unsent:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def percentile(ordered: list[float], pct: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def sink_arrivals(path: str, references: set[str]) -> tuple[Counter, dict[str, float]]:
    """How many times the sink got each of these references, and when it first got each."""
    seen, first_at = Counter(), {}
    with open(path) as lines:
        for line in lines:
            record = json.loads(line)
            reference = record["reference"]
            if reference in references:
                seen[reference] += 1
                first_at.setdefault(reference, record.get("at"))
    return seen, first_at


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True)
    parser.add_argument("--sink", default="var/bench-sink.jsonl")
    parser.add_argument("--wait", type=int, default=900, help="seconds to let the workers drain the queue")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    inbound = Message.objects.filter(direction=Direction.INBOUND, provider_message_id__startswith=f"bench-{args.run}-")
    drained = run_drain_wait(inbound, args.wait)

    stored_at = {pk: created.timestamp() for pk, created in inbound.values_list("pk", "created_at")}
    total = len(stored_at)
    reply_counts = Counter(inbound.annotate(reply_count=Count("replies")).values_list("reply_count", flat=True))
    replies = {
        str(uuid): in_reply_to
        for uuid, in_reply_to in Message.objects.filter(in_reply_to__in=inbound).values_list("uuid", "in_reply_to")
    }
    seen, first_at = sink_arrivals(args.sink, set(replies))
    lost = reply_counts.get(0, 0) + sum(1 for r in replies if seen[r] == 0)
    doubled = sum(n for count, n in reply_counts.items() if count > 1) + sum(1 for n in seen.values() if n > 1)

    figures = {
        "run": args.run,
        "drained": drained,
        "inbound": total,
        "replies_per_inbound": {str(k): v for k, v in sorted(reply_counts.items())},
        "sink_requests": sum(seen.values()),
        "sink_distinct": len(seen),
        "lost": lost,
        "doubled": doubled,
    }
    print(f"inbound stored: {total}{'' if drained else f' (not drained after {args.wait} s)'}")
    print(f"replies per inbound: {figures['replies_per_inbound']}")
    print(f"replies received by the sink: {figures['sink_requests']} for {figures['sink_distinct']} distinct replies")

    arrived = {r: at for r, at in first_at.items() if at is not None}
    if total and arrived:
        first_in, last_in = min(stored_at.values()), max(stored_at.values())
        last_reply = max(arrived.values())
        latencies = sorted((at - stored_at[replies[r]]) * 1000 for r, at in arrived.items())
        figures.update(
            inbound_rate=total / (last_in - first_in) if last_in > first_in else None,
            loop_rate=len(arrived) / (last_reply - first_in) if last_reply > first_in else None,
            loop_seconds=last_reply - first_in,
            backlog_drain_s=last_reply - last_in,
            latency_ms={
                "p50": percentile(latencies, 50),
                "p99": percentile(latencies, 99),
                "max": latencies[-1],
            },
        )
        if figures["inbound_rate"]:
            print(f"inbound stored at {figures['inbound_rate']:.1f} SMS/s")
        print(
            f"first inbound to last reply at the sink: {figures['loop_seconds']:.1f} s, "
            f"end to end {figures['loop_rate'] or 0:.1f} SMS/s; "
            f"last reply {figures['backlog_drain_s']:.2f} s after the last inbound"
        )
        print(
            "inbound -> reply at the sink: p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {max:.1f} ms".format(
                **figures["latency_ms"]
            )
        )
    print(f"lost: {lost}  doubled: {doubled}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    sys.exit(0 if total and not lost and not doubled else 1)


if __name__ == "__main__":
    main()
