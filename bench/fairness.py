"""Fair shares between services: one worker, a send rate, two services' backlogs.

    .venv/bin/python bench/fairness.py --rate 200 --backlog 20000 --seconds 30

On the same stack as ``bench/run.py`` (Pub/Sub emulator, SES stand-in, metadata stand-in),
``email-worker pull`` with per-service tenancy and ``EMAIL_WORKER_SEND_RATE_PER_S=RATE``
serves two services, ``bulk`` and ``alerts``. Two phases, each on fresh topics:

1. **Backlog.** ``bulk`` has BACKLOG requests waiting (weight 1); ``alerts`` (weight 1)
   publishes 2 requests a second for SECONDS. Prints alerts' publish-to-result p50/p99/max
   and the total results per second over the phase (the rate the backlog leaves unused is
   none).
2. **Weights.** ``bulk`` (weight 3) and ``alerts`` (weight 1) both have a backlog; over
   SECONDS (after 5 s of warm-up) prints each one's results per second and their ratio.

Not part of ``make test``; docs/scaling.md ("Fair shares") has the figures. Exits 2 if a
result was not ``sent``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import ROLE, Bench, Collector, machine, parse_options  # noqa: E402
from bench.ses_standin import marker  # noqa: E402
from tests.support.pubsub_emulator import unique_name  # noqa: E402

SERVICES = ("bulk", "alerts")


def document(service_id: str, request_id: str) -> bytes:
    return json.dumps(
        {
            "version": 1,
            "request_id": request_id,
            "from": f"{service_id} <{service_id}@example.com>",
            "to": ["alice@example.org"],
            "subject": f"Notice {marker(request_id)}",
            "text": f"Hello\n{marker(request_id)}\n",
        }
    ).encode()


class FairnessBench(Bench):
    """The benchmark stack with two services, each with its own topic."""

    def configure(self, weights: dict[str, float]) -> None:
        for service_id in SERVICES:
            path = self.config_dir / "production" / f"{service_id}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                json.dumps(
                    {
                        "service_id": service_id,
                        "service_role_arn": ROLE,
                        "allowed_from_domains": ["example.com"],
                        "weight": weights[service_id],
                    }
                )
            )

    def topics(self, dead_letter_topic: str) -> tuple[dict[str, str], dict[str, str]]:
        """Each service's topic, and the worker's per-service tenancy settings."""
        prefix = unique_name("fair")
        topics: dict[str, str] = {}
        for name in (*SERVICES, "replays"):
            topic = self.emulator.create_topic(f"{prefix}-{name}")
            self.emulator.create_subscription(
                topic, f"{prefix}-{name}-worker", dead_letter_topic=dead_letter_topic
            )
            topics[name] = topic
        settings = {
            "EMAIL_WORKER_SERVICE_TOPIC": f"{prefix}-{{service}}",
            "EMAIL_WORKER_SERVICE_SUBSCRIPTION": f"{prefix}-{{service}}-worker",
            "EMAIL_WORKER_REPLAY_TOPIC": f"{prefix}-replays",
            "EMAIL_WORKER_REPLAY_SUBSCRIPTION": f"{prefix}-replays-worker",
        }
        return topics, settings

    def phase(self, name: str, weights: dict[str, float]) -> tuple[Any, Collector, dict[str, str]]:
        """Fresh topics and a worker for them; returns the process, collector and topics."""
        self.configure(weights)
        queue = self.emulator.create_queue()
        results_topic = self.emulator.create_topic(unique_name("results"))
        collector = Collector(self.subscriber, self.emulator.create_subscription(results_topic))
        topics, tenancy = self.topics(queue.dead_letter_topic)
        # After start()'s own settings, which name the one service run.py uses.
        self.args.worker_env = [
            f"EMAIL_WORKER_SEND_RATE_PER_S={self.args.rate}",
            f"EMAIL_WORKER_ALLOWED_SERVICES={','.join(SERVICES)}",
        ]
        process = self.start("worker", "", results_topic, queue.dead_letter_topic, tenancy)
        print(f"{name}: worker pid {process.pid}", flush=True)
        return process, collector, topics

    def backlog(self, topic: str, service_id: str, count: int, tag: str) -> list[str]:
        ids = [f"{tag}-{service_id}-{n}" for n in range(count)]
        futures = [self.bulk_publisher.publish(topic, document(service_id, r)) for r in ids]
        for future in futures:
            future.result(timeout=120)
        return ids


def stop(process: Any) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except Exception:
        process.kill()


def backlog_phase(bench: FairnessBench, args: argparse.Namespace) -> dict[str, float]:
    process, collector, topics = bench.phase("backlog", {"bulk": 1, "alerts": 1})
    try:
        bench.backlog(topics["alerts"], "alerts", 5, "warm")
        collector.wait_for([f"warm-alerts-{n}" for n in range(5)], timeout_s=120)
        bench.backlog(topics["bulk"], "bulk", args.backlog, "backlog")
        time.sleep(5)  # the backlog fills the worker
        first = len(collector.arrivals)
        started = time.monotonic()
        published: dict[str, float] = {}
        for n in range(int(args.seconds * 2)):
            request_id = f"trickle-alerts-{n}"
            published[request_id] = time.monotonic()
            bench.paced_publisher.publish(topics["alerts"], document("alerts", request_id))
            time.sleep(max(0.0, started + (n + 1) / 2 - time.monotonic()))
        collector.wait_for(list(published), timeout_s=120)
        elapsed = time.monotonic() - started
        total_per_s = (len(collector.arrivals) - first) / elapsed
        delays = sorted(collector.arrivals[r] - published[r] for r in published)
    finally:
        stop(process)
        collector.close()
    return {
        "alerts p50 ms": 1000 * statistics.median(delays),
        "alerts p99 ms": 1000 * delays[max(0, int(len(delays) * 0.99) - 1)],
        "alerts max ms": 1000 * delays[-1],
        "results/s (both)": total_per_s,
        "not sent (backlog phase)": sum(n for s, n in collector.statuses.items() if s != "sent"),
    }


def weights_phase(bench: FairnessBench, args: argparse.Namespace) -> dict[str, float]:
    process, collector, topics = bench.phase("weights", {"bulk": 3, "alerts": 1})
    count = int(args.rate * (args.seconds + 20))
    try:
        bench.backlog(topics["alerts"], "alerts", count, "w")
        bench.backlog(topics["bulk"], "bulk", count, "w")
        time.sleep(5)
        before = dict(collector.arrivals)
        time.sleep(args.seconds)
        after = dict(collector.arrivals)
    finally:
        stop(process)
        collector.close()
    new = [r for r in after if r not in before]
    per_s = {s: sum(f"-{s}-" in r for r in new) / args.seconds for s in SERVICES}
    return {
        "bulk results/s (weight 3)": per_s["bulk"],
        "alerts results/s (weight 1)": per_s["alerts"],
        "ratio": per_s["bulk"] / per_s["alerts"] if per_s["alerts"] else float("nan"),
        "not sent (weights phase)": sum(n for s, n in collector.statuses.items() if s != "sent"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--backlog", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parse_options([])
    parser.parse_args(namespace=args)
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    bench = FairnessBench(args)
    with bench:
        figures = {**backlog_phase(bench, args), **weights_phase(bench, args)}
    for label, value in figures.items():
        print(f"  {label:30} {value:10.1f}")
    return 2 if figures["not sent (backlog phase)"] or figures["not sent (weights phase)"] else 0


if __name__ == "__main__":
    sys.exit(main())
