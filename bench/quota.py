"""Benchmark: pacing from SES's quota, several ``email-worker pull`` against one SES account.

    .venv/bin/python bench/quota.py [--requests 20000] [--rate 200] [--workers 4]

Starts the Pub/Sub emulator (reached through ``TcpRelay(end_streams=True)``, so that a killed
worker's streams end as with the real service), the metadata stand-in and the SES stand-in
enforcing an account's quota as SES does (``bench/ses_quota.py``: a token bucket of R
recipients per second answering ``Throttling`` / "Maximum sending rate exceeded.", and
``GetAccount``), then ``--workers`` worker processes with their defaults (quota pacing on, a
shared SQLite ledger holding their heartbeats, no send rate set). A feeder keeps a backlog of
``--window`` requests waiting in Pub/Sub (the emulator ignores flow control, so a larger one
would only sit in the workers' streams). Three phases, timed by the stand-in's clock:

1. **drain**: ``--requests`` requests at R; the drain rate is the recipients the stand-in
   accepted per second from the first to the last of them, as a fraction of R; the share of
   SES calls throttled (botocore's own retries included); failures and duplicates;
2. **R changes**: R set to R/2, then 1.5 R (200 -> 100 -> 300), ``--phase-s`` each; each
   convergence time is from the change to the first of three seconds in a row that all
   carried 90-100% of the new R with at most 1% of their calls throttled;
3. **a worker killed** (SIGKILL) at R again: the time until the others carry its share, the
   same test.

Exits non-zero if a target is missed: >= 0.97 R, <= 0.5% throttled, 0 failures, 0 duplicate
SES sends, 0 duplicate results before the kill (after it, a result the killed worker had
published but not yet acked for is published again on redelivery, as docs/formats.md says),
convergence within 10 s, takeover within 30 s. (A little over 300 lines, so that
the whole benchmark reads in one place.)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench.run import VENV_BIN, Collector, request_document  # noqa: E402
from bench.ses_quota import SesQuota  # noqa: E402
from bench.ses_standin import SesStandIn  # noqa: E402
from tests.support.metadata_server import MetadataServer  # noqa: E402
from tests.support.pubsub_emulator import PubSubEmulator, unique_name  # noqa: E402
from tests.support.tcp_relay import TcpRelay  # noqa: E402

SERVICE = "billing"
ROLE = "arn:aws:iam::123456789012:role/email-sender"
SETTLED_S = 3  # seconds in a row a new rate must hold to count as converged


def timeline(quota: SesQuota, start: float, end: float) -> str:
    """Each second's accepted recipients (and throttled calls, when any) from start to end."""
    seconds = range(int(start), int(end) + 1)
    shown = []
    for second in seconds:
        throttled = quota.throttled_by_second[second]
        shown.append(
            f"{quota.accepted_by_second[second]}" + (f"/{throttled}t" if throttled else "")
        )
    return " ".join(shown)


def converged_after(quota: SesQuota, changed_at: float, rate: float, until: float) -> float | None:
    """Seconds from ``changed_at`` to the first of SETTLED_S seconds in a row that each
    carried 90-100% of ``rate`` with at most 1% of their calls throttled; None: never."""
    accepted, throttled = quota.accepted_by_second, quota.throttled_by_second

    def good(second: int) -> bool:
        calls = accepted[second] + throttled[second]  # one recipient a call here
        return 0.9 * rate <= accepted[second] <= rate * 1.01 and throttled[second] <= 0.01 * calls

    for start in range(int(changed_at) + 1, int(until) - SETTLED_S + 1):
        if all(good(start + n) for n in range(SETTLED_S)):
            return start - changed_at
    return None


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="email-worker-quota-"))
        self.quota = SesQuota(args.rate)
        self.ses = SesStandIn(quota=self.quota)
        self.metadata = MetadataServer()
        self.emulator = PubSubEmulator()
        self.workers: list[subprocess.Popen[bytes]] = []
        self.published = 0
        self.feeding = threading.Event()
        self.ids: list[str] = []
        #: Duplicate results before a worker was killed (after it, the killed worker's sent
        #: but unacknowledged requests are delivered again and their results published again).
        self.duplicates_before_kill = 0

    def __enter__(self) -> Run:
        self.metadata.start()
        self.ses.start()
        self.emulator.start()
        self.relay = TcpRelay(self.emulator.port, end_streams=True).__enter__()
        os.environ["PUBSUB_EMULATOR_HOST"] = self.emulator.host
        os.environ["GOOGLE_CLOUD_PROJECT"] = self.emulator.project_id
        from google.cloud import pubsub_v1

        from worker.transports.ack_batches import gather_acks

        # The benchmark's own subscriber shares the machine with the workers: it gathers its
        # acks for 100 ms as they do, instead of sending one request per result.
        gather_acks()
        self.subscriber = pubsub_v1.SubscriberClient()
        self.publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.01)
        )
        self.queue = self.emulator.create_queue()
        results_topic = self.emulator.create_topic(unique_name("results"))
        self.results_topic = results_topic
        self.collector = Collector(
            self.subscriber, self.emulator.create_subscription(results_topic)
        )
        config = self.workdir / "config" / "production" / f"{SERVICE}.json"
        config.parent.mkdir(parents=True)
        config.write_text(
            json.dumps(
                {
                    "service_id": SERVICE,
                    "service_role_arn": ROLE,
                    "default_from_address": "billing@example.com",
                    "allowed_from_domains": ["example.com"],
                }
            )
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.feeding.clear()
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        self.collector.close()
        self.publisher.stop()
        self.subscriber.close()
        self.relay.stop()
        self.emulator.close()
        self.ses.stop()
        self.metadata.stop()

    def env(self) -> dict[str, str]:
        def short(path: str) -> str:
            return path.rsplit("/", 1)[-1]

        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "EMAIL_WORKER_", "GCE_METADATA", "PUBSUB_"))
            and k not in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG")
        }
        return {
            **keep,
            "PUBSUB_EMULATOR_HOST": self.relay.host,
            "GOOGLE_CLOUD_PROJECT": self.emulator.project_id,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_SESV2": self.ses.endpoint,
            "AWS_ENDPOINT_URL_STS": self.ses.endpoint,
            "CLOUDSDK_CONFIG": str(self.workdir / "gcloud"),
            "GCE_METADATA_HOST": self.metadata.host,
            "GCE_METADATA_IP": self.metadata.host,
            "EMAIL_WORKER_TENANCY": "shared",
            "EMAIL_WORKER_REQUESTS_TOPIC": short(self.queue.topic),
            "EMAIL_WORKER_SUBSCRIPTION": short(self.queue.subscription),
            "EMAIL_WORKER_RESULTS_TOPIC": short(self.results_topic),
            "EMAIL_WORKER_DEAD_LETTER_TOPIC": short(self.queue.dead_letter_topic),
            "EMAIL_WORKER_ALLOWED_SERVICES": SERVICE,
            "EMAIL_WORKER_SERVICE_CONFIG_URL": (
                f"file://{self.workdir}/config/{{environment}}/{{service_id}}.json"
            ),
            "EMAIL_WORKER_LEDGER": f"sqlite:///{self.workdir.resolve()}/ledger.db",
            "EMAIL_WORKER_SEND_EVENT_WAIT_S": "0",
        }

    def start_workers(self) -> None:
        for number in range(self.args.workers):
            log = (self.workdir / f"worker-{number}.log").open("ab")
            with log:
                argv = [str(VENV_BIN / "email-worker"), "pull"]
                self.workers.append(
                    subprocess.Popen(argv, env=self.env(), stdout=log, stderr=log)  # noqa: S603
                )

    def wait_until_counted(self) -> None:
        """Until every worker has read the quota, and then counted the others (two of the
        default 5 s heartbeats)."""
        while self.quota.get_account_calls < len(self.workers):
            self.check_workers()
        time.sleep(self.args.warmup_s)

    def check_workers(self) -> None:
        """Wait a little; stop the run if a worker has exited."""
        time.sleep(0.05)
        for number, worker in enumerate(self.workers):
            if worker.poll() is not None:
                log = self.workdir / f"worker-{number}.log"
                raise RuntimeError(f"worker {number} exited ({worker.returncode}): see {log}")

    def feed(self) -> None:
        """Keep about ``--window`` requests waiting, while ``feeding`` is set."""
        while self.feeding.is_set():
            waiting = self.published - len(self.collector.arrivals)
            for _ in range(max(self.args.window - waiting, 0)):
                request_id = f"quota-{self.published}"
                self.ids.append(request_id)
                self.publisher.publish(self.queue.topic, request_document(request_id))
                self.published += 1
            time.sleep(0.2)


def run(args: argparse.Namespace) -> int:
    with Run(args) as bench:
        bench.start_workers()
        bench.wait_until_counted()
        bench.feeding.set()
        threading.Thread(target=bench.feed, daemon=True).start()
        problems = drain_phase(bench) + rate_change_phase(bench) + kill_phase(bench)
        problems += tally(bench)
    for problem in problems:
        print(f"TARGET MISSED: {problem}")
    return 1 if problems else 0


def drain_phase(bench: Run) -> list[str]:
    """Send ``--requests`` at R: the drain rate and the share of calls throttled."""
    args, quota = bench.args, bench.quota
    accepted0, throttled0 = quota.accepted_calls, quota.throttled_calls
    while quota.accepted_calls == accepted0:
        bench.check_workers()
    started = time.monotonic()
    psutil.cpu_percent()  # from here
    while quota.accepted_calls - accepted0 < args.requests:
        bench.check_workers()
    ended = time.monotonic()
    took = ended - started
    accepted = quota.accepted_calls - accepted0
    throttled = quota.throttled_calls - throttled0
    rate, share = accepted / took, throttled / (accepted + throttled)
    print(f"machine busy during the drain: {psutil.cpu_percent():.0f}% of its CPUs")
    print(
        f"drain: {accepted} sends in {took:.1f} s = {rate:.1f}/s = {rate / args.rate:.3f} R; "
        f"{throttled} of {accepted + throttled} SES calls throttled ({share:.2%})"
    )
    print(f"  first seconds: {timeline(quota, started, started + 8)}")
    print(f"  last seconds: {timeline(quota, ended - 6, ended)}")
    problems = []
    if rate < 0.97 * args.rate:
        problems.append(f"drain rate {rate / args.rate:.3f} R < 0.97 R")
    if share > 0.005:
        problems.append(f"{share:.2%} of SES calls throttled > 0.5%")
    return problems


def rate_change_phase(bench: Run) -> list[str]:
    """R to R/2, then to 1.5 R: how long until the workers carry each."""
    problems = []
    for new_rate in (bench.args.rate / 2, bench.args.rate * 1.5):
        changed = time.monotonic()
        bench.quota.set_rate(new_rate)
        time.sleep(bench.args.phase_s)
        after = converged_after(bench.quota, changed, new_rate, time.monotonic())
        shown = "never" if after is None else f"{after:.1f} s"
        print(f"R -> {new_rate:g}/s: converged after {shown}")
        print(f"  per second: {timeline(bench.quota, changed - 3, time.monotonic() - 1)}")
        if after is None or after > 10:
            problems.append(f"R -> {new_rate:g}: converged after {shown} (> 10 s)")
    return problems


def kill_phase(bench: Run) -> list[str]:
    """At R again, SIGKILL one worker: how long until the others carry its share."""
    args = bench.args
    bench.quota.set_rate(args.rate)
    time.sleep(args.phase_s / 2)
    killed = time.monotonic()
    bench.duplicates_before_kill = bench.collector.duplicates
    bench.workers[0].send_signal(signal.SIGKILL)
    time.sleep(args.phase_s + 15)
    after = converged_after(bench.quota, killed, args.rate, time.monotonic())
    shown = "never" if after is None else f"{after:.1f} s"
    print(f"one of {args.workers} workers killed: the others took its share after {shown}")
    print(f"  per second: {timeline(bench.quota, killed - 3, time.monotonic() - 1)}")
    return [] if after is not None and after <= 30 else [f"takeover after {shown} (> 30 s)"]


def tally(bench: Run) -> list[str]:
    """Stop the rest, collect the last results: failures and duplicates."""
    bench.feeding.clear()
    for worker in bench.workers[1:]:
        worker.send_signal(signal.SIGTERM)
    for worker in bench.workers:
        worker.wait(timeout=60)
    bench.collector.drain(quiet_s=2.0, limit_s=20.0)
    failures = sum(c for s, c in bench.collector.statuses.items() if s != "sent")
    sends = bench.ses.send_counts(bench.ids)
    duplicate_sends = sum(c - 1 for c in sends if c > 1)
    before_kill = bench.duplicates_before_kill
    print(
        f"{len(bench.collector.arrivals)} results, {failures} not sent, "
        f"{bench.collector.duplicates} duplicate results ({before_kill} before the kill; "
        f"{bench.collector.redelivered} result messages redelivered to the collector), "
        f"{duplicate_sends} duplicate SES sends, {bench.ses.unattributed} unattributed; "
        f"GetAccount called {bench.quota.get_account_calls} times; logs in {bench.workdir}"
    )
    if failures or before_kill or duplicate_sends:
        return ["failures or duplicates"]
    return []


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="sends in the drain phase")
    parser.add_argument("--rate", type=float, default=200.0, help="R, recipients per second")
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument("--window", type=int, default=4000, help="requests kept waiting")
    parser.add_argument("--phase-s", type=float, default=30.0, help="seconds of each R")
    parser.add_argument(
        "--warmup-s", type=float, default=11.0, help="after the quota reads, before publishing"
    )
    return parser.parse_args(argv)


def main() -> int:
    # A SIGTERM unwinds like Ctrl-C, so that the stack and the workers are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return run(parse_options())


if __name__ == "__main__":
    sys.exit(main())
