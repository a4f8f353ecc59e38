"""Benchmark: many scheduled requests due in the same second, sent once each.

    .venv/bin/python bench/schedule.py --requests 5000 --workers 3 --lead-s 150

On the benchmark's local stack (``bench/run.py``'s: the Pub/Sub emulator, the metadata
stand-in, the SES/STS stand-in), starts ``--workers`` ``email-worker pull`` processes sharing
one SQLite ledger, publishes ``--requests`` requests whose ``send_at`` is the same second,
``--lead-s`` seconds ahead, and waits for a ``scheduled`` result for each, then for their
final results. It prints how long after ``send_at`` the last one was sent, the rate, and the
lateness of the sends (p50, p99, max), and exits non-zero unless every request got exactly one
``sent`` result and the SES stand-in accepted exactly one send for each.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import Bench, request_document  # noqa: E402
from tests.support.pubsub_emulator import unique_name  # noqa: E402


class Results:
    """Every result of one results subscription: (request_id, status) and arrival time."""

    def __init__(self, subscriber: Any, subscription: str) -> None:
        self.by_status: dict[str, dict[str, list[float]]] = collections.defaultdict(
            lambda: collections.defaultdict(list)
        )
        self._lock = threading.Lock()
        self._future = subscriber.subscribe(subscription, callback=self._on_result)

    def _on_result(self, message: Any) -> None:
        result = json.loads(message.data)
        message.ack()
        with self._lock:
            self.by_status[result["status"]][result["request_id"]].append(time.time())

    def count(self, status: str) -> int:
        with self._lock:
            return len(self.by_status[status])

    def wait(self, status: str, total: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count(status) < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.count(status)} of {total} {status} results")
            time.sleep(0.2)

    def close(self) -> None:
        self._future.cancel()


def scheduled_document(request_id: str, send_at: float) -> bytes:
    document = json.loads(request_document(request_id))
    document["send_at"] = datetime.fromtimestamp(send_at, UTC).isoformat()
    return json.dumps(document).encode()


def run(args: argparse.Namespace) -> int:
    bench_args = argparse.Namespace(env=[], worker_env=args.worker_env, variants={})
    with Bench(bench_args) as bench:
        queue = bench.emulator.create_queue()
        results_topic = bench.emulator.create_topic(unique_name("results"))
        results = Results(bench.subscriber, bench.emulator.create_subscription(results_topic))
        topic, subscription, tenancy = bench.inbound("worker", queue)
        workers = [
            bench.start("worker", subscription, results_topic, queue.dead_letter_topic, tenancy)
            for _ in range(args.workers)
        ]
        ids = [f"sched-{n}" for n in range(args.requests)]
        try:
            # Warm-up, not scheduled: the workers are pulling once it is sent.
            bench.bulk_publisher.publish(topic, request_document("warm-up"))
            results.wait("sent", 1, timeout_s=180)
            send_at = time.time() + args.lead_s
            for request_id in ids:
                bench.bulk_publisher.publish(topic, scheduled_document(request_id, send_at))
            results.wait("scheduled", len(ids), timeout_s=args.lead_s)
            accepted_s = time.time() - (send_at - args.lead_s)
            print(f"{len(ids)} scheduled in {accepted_s:.0f}s", flush=True)
            results.wait("sent", len(ids) + 1, timeout_s=args.lead_s + 600)
            time.sleep(5)  # time for a late duplicate to show
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=60)
            results.close()
        return report(bench, results, ids, send_at, args)


def report(
    bench: Bench, results: Results, ids: list[str], send_at: float, args: argparse.Namespace
) -> int:
    sent = results.by_status["sent"]
    sent.pop("warm-up", None)
    lateness = sorted(min(sent[r]) - send_at for r in ids)
    duplicate_results = sum(len(sent[r]) - 1 for r in ids)
    sends = bench.ses.send_counts(ids)
    not_once = sum(1 for count in sends if count != 1)
    others = {s: len(r) for s, r in results.by_status.items() if s not in ("scheduled", "sent")}
    last = lateness[-1]
    print(
        f"{len(ids)} requests due at the same second, {args.workers} workers: all sent "
        f"{last:.1f}s after send_at ({len(ids) / max(last, 0.001):.0f}/s); lateness p50 "
        f"{statistics.median(lateness):.1f}s, p99 {lateness[int(len(lateness) * 0.99) - 1]:.1f}s; "
        f"SES sends not exactly once: {not_once}; duplicate sent results: {duplicate_results}; "
        f"other results: {others or 'none'}"
    )
    return 0 if not_once == 0 and not others and duplicate_results == 0 else 1


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument(
        "--lead-s", type=float, default=150.0, help="how far ahead send_at is when publishing"
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every worker (repeatable)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run(parse_options()))
