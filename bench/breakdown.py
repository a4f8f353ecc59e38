"""Read what bench/probe recorded: where latency and CPU go, per subscriber.

    .venv/bin/python bench/breakdown.py --timings /tmp/timings.jsonl /tmp/timeline-*.jsonl
    .venv/bin/python bench/breakdown.py --stages /tmp/stages.jsonl

With ``--timings`` (written by ``bench/run.py --timings``) and the timeline files of the same
run (``BENCH_TIMELINE``, one per subscriber and round, named ``...-{kind}.jsonl`` with kind as
``bench/run.py --env`` fills it in): for each, the median, 90th and 99th percentile of every
step of a latency-phase request, from its publish to its result's arrival. With ``--stages``:
the CPU per email of each stage of the worker's handling, per recorded process.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import statistics
from pathlib import Path

# The steps in the order a request passes them; absent ones (a baseline has no ledger) are
# skipped, so each row is the time from the previous step present.
STEPS = (
    "received",
    "callback",
    "claim",
    "claimed",
    "send",
    "sent",
    "record",
    "recorded",
    "publish",
    "publish_called",
    "wait_publish",
    "publish_done",
    "ack",
    "acked",
    "callback_end",
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def latency(timings_path: Path, timelines: list[Path]) -> None:
    requests: dict[str, dict[str, float]] = {}
    for line in timings_path.read_text().splitlines():
        record = json.loads(line)
        requests[record["request_id"]] = record
    for path in timelines:
        first: dict[str, dict[str, float]] = collections.defaultdict(dict)
        for line in path.read_text().splitlines():
            request_id, stage, at = json.loads(line)
            first[request_id].setdefault(stage, at)
        steps: dict[str, list[float]] = collections.defaultdict(list)
        for request_id, stamps in first.items():
            timing = requests.get(request_id)
            if timing is None:
                continue  # warm-up and throughput requests: not timed by the benchmark
            chain = [("published", timing["published"])]
            chain += [(stage, stamps[stage]) for stage in STEPS if stage in stamps]
            chain.append(("result", timing["result"]))
            for (before, started), (after, ended) in itertools.pairwise(chain):
                steps[f"{before} -> {after}"].append((ended - started) * 1000)
            steps["publish -> result (all)"].append((timing["result"] - timing["published"]) * 1000)
        count = len(steps.get("publish -> result (all)", []))
        print(f"\n{path.name}: {count} requests; ms  median     p90     p99")
        for name, values in steps.items():
            print(
                f"  {name:38} {statistics.median(values):7.2f} {percentile(values, 0.9):7.2f} "
                f"{percentile(values, 0.99):7.2f}"
            )


def stages(path: Path) -> None:
    for line in path.read_text().splitlines():
        record = json.loads(line)
        emails = record["calls"].get("handler (all of it)", 0) or 1
        process_ms = record["process_cpu_s"] * 1000 / emails
        print(f"\n{emails} emails; the whole process (start-up included) {process_ms:.3f} ms each")
        for stage, seconds in sorted(record["cpu_s"].items(), key=lambda item: -item[1]):
            share = 100 * seconds / record["process_cpu_s"]
            print(f"  {stage:28} {seconds * 1000 / emails:7.3f} ms/email  {share:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timings", type=Path, help="bench/run.py --timings output")
    parser.add_argument("--stages", type=Path, help="BENCH_STAGES output")
    parser.add_argument("timelines", nargs="*", type=Path, help="BENCH_TIMELINE outputs")
    args = parser.parse_args()
    if args.timings is not None:
        latency(args.timings, args.timelines)
    if args.stages is not None:
        stages(args.stages)


if __name__ == "__main__":
    main()
