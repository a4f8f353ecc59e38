"""What per-service tenancy costs: the worker with per-service topics against one shared topic.

    .venv/bin/python bench/tenancy_cost.py --requests 2000 --rounds 3 [--cpu-hog]

The same stack and rounds as ``bench/run.py`` (see its docstring for what a round measures),
with one contender, ``email-worker pull``, in two settings taken in turns, the order rotating
from round to round: EMAIL_WORKER_TENANCY=per-service (the default: one stream per service's
subscription plus the replay subscription, and the publisher checked on every request) and
EMAIL_WORKER_TENANCY=shared (one subscription, the request's service_id trusted). Prints the
medians and the per-service/shared ratios; exits 2 if a round had a duplicate or a non-sent
result, as ``bench/run.py`` does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import Bench, CpuHog, Round, machine, parse_options  # noqa: E402

SETTINGS = {"per-service": [], "shared": ["EMAIL_WORKER_TENANCY=shared"]}
FIGURES = (
    ("throughput (emails/s)", "emails_per_s", "%.0f"),
    ("CPU ms per email (process tree)", "cpu_ms_per_email", "%.2f"),
    ("p50 latency ms", "p50_ms", "%.1f"),
    ("p99 latency ms", "p99_ms", "%.1f"),
    ("peak RSS MiB", "peak_rss_mib", "%.0f"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--cpu-hog", action="store_true")
    # bench.run's defaults for every option this command does not take (no extra
    # environment, no profile, no variants), then this command's own.
    args = parse_options([])
    parser.parse_args(namespace=args)
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    hog = CpuHog()
    rounds: dict[str, list[Round]] = {name: [] for name in SETTINGS}
    with Bench(args) as bench:
        args.logs = bench.workdir
        if args.cpu_hog:
            hog.start()
        try:
            names = list(SETTINGS)
            for number in range(1, args.rounds + 1):
                shift = (number - 1) % len(names)
                for position, name in enumerate(names[shift:] + names[:shift]):
                    args.worker_env = SETTINGS[name]
                    # Request ids come from the round number; both settings share the stack's
                    # ledger, so each round needs its own (a repeated id would be replayed).
                    result = bench.run_round("worker", (number - 1) * len(names) + position + 1)
                    rounds[name].append(result)
                    print(
                        f"round {number} {name:11}: {result.emails_per_s:6.0f} emails/s, "
                        f"{result.cpu_ms_per_email:5.2f} CPU ms/email, p50 {result.p50_ms:.1f} "
                        f"ms, p99 {result.p99_ms:.1f} ms, {result.duplicates} dup results, "
                        f"{result.duplicate_sends} dup sends",
                        flush=True,
                    )
        finally:
            hog.stop()
    print(
        f"\nmedians of {args.rounds} rounds, {args.requests} requests each, "
        f"CPU hog {'ON' if args.cpu_hog else 'off'}:"
    )
    print(f"  {'':34} {'per-service':>11} {'shared':>9} {'ratio':>7}")
    for label, attribute, fmt in FIGURES:
        per_service, shared = (
            statistics.median(getattr(r, attribute) for r in rounds[name]) for name in SETTINGS
        )
        ratio = per_service / shared if shared else float("nan")
        print(f"  {label:34} {fmt % per_service:>11} {fmt % shared:>9} {ratio:6.2f}x")
    broken = [r for rs in rounds.values() for r in rs if r.problems()]
    if broken:
        print("\nFAILED: rounds with wrong or unclean results:")
        for r in broken:
            print(f"  {r.label}: {'; '.join(r.problems())}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
