"""
Benchmark the DLT matcher: N templates in a fresh SQLite database, then M template_resolve calls.

    DJANGO_DEBUG=1 python bench/dlt_match.py --templates 10000 --matches 20000 [--headers 20]

Half the texts are rendered from a random template (hits); the other half are the same
texts with one scrubbing fault (a double space, a curly apostrophe, a dropped last
character, trailing text, a case change, an over-long value), which must miss and be
explained. Prints the index build time and, for hits and misses, the mean and p99 of one
call, through template_resolve (cache version check included) and the matcher alone.
"""

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = [
    "account",
    "balance",
    "credited",
    "debited",
    "order",
    "shipped",
    "delivered",
    "payment",
    "received",
    "policy",
    "renewal",
    "due",
    "appointment",
    "confirmed",
    "booking",
    "reference",
    "ticket",
    "refund",
    "processed",
    "invoice",
    "generated",
    "plan",
    "activated",
    "recharge",
    "successful",
    "bill",
    "amount",
    "statement",
    "ready",
    "loan",
    "EMI",
    "scheduled",
    "card",
    "blocked",
    "password",
    "changed",
    "login",
    "detected",
    "device",
    "branch",
    "visit",
    "KYC",
    "update",
    "pending",
    "request",
    "approved",
    "cheque",
    "cleared",
    "deposit",
    "matured",
    "subscription",
    "expires",
    "tomorrow",
    "today",
    "reward",
    "points",
    "earned",
    "voucher",
    "code",
    "valid",
    "till",
]
OPENINGS = ("Dear {#var#}, ", "Hi {#var#}, ", "Your ", "Alert: ", "{#var#} is your ", "Thank you for ", "")
CLOSINGS = (" - ACME", ". Team ACME", ". For help call {#cbn#}", ". Details: {#url#}", ".", " Regards, ACME Bank")
TYPED = ("{#numeric#}", "{#alphanumeric#}", "{#var#}", "Rs {#numeric#}", "on {#var#}")
VALUES = {
    "var": ("Ram", "12-Mar-2025", "ACME Gold", "Priya Sharma", "A/C XX1234"),
    "numeric": ("4821", "120050", "7", "99887766"),
    "alphanumeric": ("AB12CD", "Gold Plan", "ORDER 77"),
    "url": ("https://acme.in/t/x1", "http://acme.in/r?a=1"),
    "urlott": ("https://acme.in/ott",),
    "cbn": ("18001234567", "+91 98765 43210"),
    "email": ("help@acme.in",),
}


def make_contents(count: int, rng: random.Random) -> list[str]:
    contents, seen = [], set()
    while len(contents) < count:
        words = rng.sample(WORDS, rng.randint(4, 9))
        body = []
        for word in words:
            body.append(word)
            if rng.random() < 0.18:
                body.append(rng.choice(TYPED))
        content = rng.choice(OPENINGS) + " ".join(body) + rng.choice(CLOSINGS)
        if content not in seen and "{#" in content:
            seen.add(content)
            contents.append(content)
    return contents


def render(content: str, rng: random.Random) -> str:
    from templates.content import parse_content

    return "".join(p.literal if p.is_literal else rng.choice(VALUES[p.kind]) for p in parse_content(content))


def spoil(text: str, rng: random.Random) -> str:
    """One fault operators reject."""
    faults = [
        lambda t: t.replace(" ", "  ", 1),
        lambda t: t.replace("'", "\u2019", 1) if "'" in t else t + "\u2019",
        lambda t: t[:-1],
        lambda t: t + " Thanks",
        lambda t: t[:3] + t[3].swapcase() + t[4:] if len(t) > 4 and t[3].isalpha() else t + "!",
        lambda t: t.replace("Ram", "Ramakrishnan Venkataraman Iyer", 1) if "Ram" in t else "x" + t,
    ]
    return rng.choice(faults)(text)


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def report(label: str, samples: list[float]) -> None:
    print(
        f"  {label:<34} n={len(samples):>6}  mean {statistics.fmean(samples):7.1f} µs  "
        f"p50 {percentile(samples, 50):7.1f} µs  p99 {percentile(samples, 99):7.1f} µs  "
        f"max {max(samples):8.1f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", type=int, default=10_000)
    parser.add_argument("--matches", type=int, default=20_000)
    parser.add_argument("--headers", type=int, default=20, help="templates are spread over this many headers")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="dlt-bench-")
    try:
        run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: str) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsgate.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    from templates.index import index_invalidate, template_index
    from templates.models import Header, PrincipalEntity, Template
    from templates.services import template_resolve

    call_command("migrate", verbosity=0)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with transaction.atomic():
        entity = PrincipalEntity.objects.create(name="ACME", pe_id="1201159100000000001")
        headers = Header.objects.bulk_create(
            Header(entity=entity, sender_id="".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ", k=6)), category="service")
            for _ in range(args.headers)
        )
        contents = make_contents(args.templates, rng)
        templates = Template.objects.bulk_create(
            Template(
                entity=entity,
                dlt_template_id=str(1107160000000000000 + n),
                name=f"bench {n}",
                category="service_implicit",
                content=content,
            )
            for n, content in enumerate(contents)
        )
        Through = Template.headers.through
        Through.objects.bulk_create(
            Through(template_id=t.pk, header_id=headers[n % len(headers)].pk) for n, t in enumerate(templates)
        )
    index_invalidate()
    print(f"{args.templates} templates over {args.headers} headers stored in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    index = template_index()
    print(f"index built in {(time.perf_counter() - started) * 1000:.0f} ms (3 queries, regexes compiled lazily)")

    cases = []
    for _ in range(args.matches // 2):
        n = rng.randrange(len(templates))
        header = headers[n % len(headers)].sender_id
        text = render(contents[n], rng)
        cases.append((header, text, True))
        cases.append((header, spoil(text, rng), False))
    rng.shuffle(cases)

    clock = time.perf_counter_ns
    timings: dict[str, list[float]] = {}

    def timed(label: str, call) -> object:
        t0 = clock()
        result = call()
        timings.setdefault(label, []).append((clock() - t0) / 1000)
        return result

    # First pass: each template's regex is compiled on its first use, so this is a cold process.
    for header, text, _ in cases:
        resolution = timed("cold", lambda h=header, t=text: template_resolve(header=h, text=t))
    cold = timings.pop("cold")
    surprises = 0
    for header, text, expect_hit in cases:
        resolution = template_resolve(header=header, text=text)
        kind = "hit" if resolution.matched else "miss"
        timed(f"template_resolve {kind}", lambda h=header, t=text: template_resolve(header=h, text=t))
        timed(f"matcher only {kind}", lambda h=header, t=text: index.match(header=h, text=t))
        if resolution.matched != expect_hit:
            surprises += 1  # a spoiled text that another template still fits (e.g. one ending in {#var#})

    print(f"{len(cases)} texts ({surprises} spoiled ones still fit some template and count as hits)")
    report("first pass (cold regex cache)", cold)
    print("steady state:")
    for label, samples in timings.items():
        if samples:
            report(label, samples)


if __name__ == "__main__":
    main()
