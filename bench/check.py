"""After a load run: every inbound of the run must have exactly one reply, sent once to the sink.

python bench/check.py --run RUN_ID --sink var/bench-sink.jsonl [--wait 120]
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

from django.db.models import Count, Max, Min  # noqa: E402

from delivery.models import Message  # noqa: E402
from delivery.statuses import Direction, Status  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True)
    parser.add_argument("--sink", default="var/bench-sink.jsonl")
    parser.add_argument("--wait", type=int, default=900, help="seconds to let the workers drain the queue")
    args = parser.parse_args()

    inbound = Message.objects.filter(direction=Direction.INBOUND, provider_message_id__startswith=f"bench-{args.run}-")
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        pending = inbound.filter(status=Status.RECEIVED).count()
        unsent = Message.objects.filter(in_reply_to__in=inbound, status__in=[Status.QUEUED, Status.SENDING]).count()
        if not pending and not unsent:
            break
        time.sleep(2)
    total = inbound.count()
    reply_counts = Counter(inbound.annotate(reply_count=Count("replies")).values_list("reply_count", flat=True))
    references = {str(u) for u in Message.objects.filter(in_reply_to__in=inbound).values_list("uuid", flat=True)}
    sink = Counter()
    with open(args.sink) as lines:
        for line in lines:
            reference = json.loads(line)["reference"]
            if reference in references:
                sink[reference] += 1
    lost = reply_counts.get(0, 0) + sum(1 for r in references if sink[r] == 0)
    doubled = sum(n for replies, n in reply_counts.items() if replies > 1) + sum(1 for n in sink.values() if n > 1)
    print(f"inbound stored: {total}")
    print(f"replies per inbound: {dict(sorted(reply_counts.items()))}")
    print(f"replies received by the sink: {sum(sink.values())} for {len(sink)} distinct replies")
    span = Message.objects.filter(in_reply_to__in=inbound).aggregate(last=Max("sent_at"))["last"]
    first = inbound.aggregate(first=Min("created_at"))["first"]
    if span and first:
        seconds = (span - first).total_seconds()
        print(f"first inbound to last reply sent: {seconds:.1f} s, end to end {total / seconds:.1f} SMS/s")
    print(f"lost: {lost}  doubled: {doubled}")
    sys.exit(0 if total and not lost and not doubled else 1)


if __name__ == "__main__":
    main()
