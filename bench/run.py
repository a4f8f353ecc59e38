"""Benchmark: ``email-worker pull`` against two hand-written subscribers, on a local stack.

    .venv/bin/python bench/run.py --requests 2000 --rounds 3 [--cpu-hog]

Starts the Pub/Sub emulator, the metadata stand-in (Google ID tokens) and a fast SES/STS
stand-in, all on 127.0.0.1, then rotates rounds of the worker, of ``bench/baseline.py`` and of
``bench/lean_baseline.py`` (each round on fresh topics; the order rotates from round to round),
so background load affects all alike. ``--cpu-hog`` keeps one core busy with a spinning child
process while the rounds run. Each round:

1. warm-up: a few requests, waited for (clients connected, AWS credentials fetched);
2. throughput: N requests published at once; the clock starts at the first publish and stops
   when the N-th result arrives; CPU is the whole process tree's user+system time over that
   window (psutil, children included);
3. latency: requests published at a fixed rate well below capacity (``--rate``), each timed
   from just before its publish to its result's arrival; p50 and p99 are reported;
4. SIGTERM; peak RSS is the process tree's high-water mark (VmHWM);
5. correctness: after the subscriber has stopped and the results have gone quiet, duplicate
   results (a request_id seen twice) and duplicate sends (the SES stand-in accepted more than
   one SendEmail for a request: every request carries ``[bench-request <id>]`` in its subject
   and text, which the stand-in reads back) are counted, as are sends the stand-in could not
   attribute and requests it saw no send for.

The figures printed are medians over rounds, and the worker/baseline and worker/lean ratios.
The command exits non-zero if one of issue 13's targets (at most the lean subscriber's CPU per
email, at least 1.5 times its throughput) is missed, or if any round had a non-``sent``
result, a duplicate result or send, an unattributed or missing send, or did not stop cleanly.
``--contenders`` runs a subset; ``templated`` (never run unless named) adds the worker sent
requests that name a template for the same email (``bench/templated.py``), and the report then
gives its ratio to the plain worker (``tmpl/wrk``). ``--variant
NAME:SETTING=VALUE[,SETTING=VALUE...]`` adds a contender: the worker with those settings (for
example ``noledger:EMAIL_WORKER_LEDGER=none``), rotated with the others, so that what one
setting costs is measured in the same run as the lean subscriber (its medians and its ratio to
the lean subscriber are printed; the targets stay the worker's). ``--profile DIR`` records the
first round's throughput phases with py-spy (that round's figures then include py-spy's
overhead) and prints the hottest functions of each subscriber. ``--env`` (every subscriber) and
``--worker-env`` add environment, ``--timings FILE`` writes the latency phase's publish and
result times: with bench/probe and bench/breakdown.py they show where time and CPU go
(docs/scaling.md).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench import templated  # noqa: E402
from bench.ses_standin import SesStandIn, marker  # noqa: E402
from tests.support.metadata_server import MetadataServer  # noqa: E402
from tests.support.pubsub_emulator import PubSubEmulator, unique_name  # noqa: E402

VENV_BIN = ROOT / ".venv" / "bin"
CONTENDERS = ("worker", "baseline", "lean")
#: Contenders run only when --contenders names them.
OPTIONAL_CONTENDERS = (templated.KIND,)
SCRIPTS = {"baseline": "baseline.py", "lean": "lean_baseline.py"}
SERVICE = "billing"
ROLE = "arn:aws:iam::123456789012:role/email-sender"

TEXT = (
    "Hello Alice,\n\nyour invoice INV-2024-0042 for 129.00 EUR is attached to your account. "
    "It is due on the 1st of next month.\n\nThank you for your business.\n\n-- \nBilling\n"
) * 4
HTML = "<html><body><p>" + TEXT.replace("\n", "<br>") + "</p></body></html>"


def request_document(request_id: str) -> bytes:
    return json.dumps(plain_request(request_id)).encode()


def templated_document(request_id: str) -> bytes:
    """The request naming the benchmark's template with data (``bench/templated.py``) that
    the worker turns into :func:`request_document`'s email."""
    return templated.document(plain_request(request_id), marker(request_id))


def plain_request(request_id: str) -> dict[str, Any]:
    return {
        "version": 1,
        "request_id": request_id,
        "service_id": SERVICE,
        "from": "Billing <billing@example.com>",
        "to": ["alice@example.org"],
        "subject": f"Your invoice INV-2024-0042 {marker(request_id)}",
        "text": f"{TEXT}\n{marker(request_id)}\n",
        "html": HTML,
    }


# -- results -----------------------------------------------------------------------------


class Collector:
    """Streaming-pull of one results subscription: arrival time of each request_id.

    ``duplicates`` counts results the workers published more than once for a request (two
    messages); ``redelivered`` counts Pub/Sub delivering the collector one message again (the
    same message id: at-least-once delivery to this subscriber, not a second result).
    """

    def __init__(self, subscriber: Any, subscription: str) -> None:
        self.arrivals: dict[str, float] = {}
        self.statuses: collections.Counter[str] = collections.Counter()
        self.duplicates = 0
        self.redelivered = 0
        self._message_ids: set[str] = set()
        self.last_message = time.monotonic()
        self._lock = threading.Lock()
        self._waiters: list[tuple[set[str], threading.Event]] = []
        self._future = subscriber.subscribe(subscription, callback=self._on_result)

    def _on_result(self, message: Any) -> None:
        now = time.monotonic()
        result = json.loads(message.data)
        message.ack()
        request_id = result["request_id"]
        with self._lock:
            self.last_message = now
            if message.message_id in self._message_ids:
                self.redelivered += 1
                return
            self._message_ids.add(message.message_id)
            if request_id in self.arrivals:
                self.duplicates += 1
                return
            self.arrivals[request_id] = now
            self.statuses[result.get("status", "?")] += 1
            for wanted, event in self._waiters:
                wanted.discard(request_id)
                if not wanted:
                    event.set()

    def wait_for(self, request_ids: list[str], timeout_s: float) -> float:
        """Block until all ``request_ids`` have results; return the last arrival time."""
        event = threading.Event()
        with self._lock:
            wanted = {r for r in request_ids if r not in self.arrivals}
            if wanted:
                self._waiters.append((wanted, event))
            else:
                event.set()
        if not event.wait(timeout_s):
            raise TimeoutError(f"{len(wanted)} of {len(request_ids)} results missing")
        with self._lock:
            return max(self.arrivals[r] for r in request_ids)

    def drain(self, quiet_s: float, limit_s: float) -> None:
        """Wait until no result has arrived for ``quiet_s`` (at most ``limit_s``)."""
        deadline = time.monotonic() + limit_s
        while (now := time.monotonic()) < deadline:
            with self._lock:
                idle = now - self.last_message
            if idle >= quiet_s:
                return
            time.sleep(min(quiet_s - idle, deadline - now))

    def close(self) -> None:
        self._future.cancel()
        with contextlib.suppress(Exception):  # cancelled
            self._future.result(timeout=10)


# -- measuring a process tree ---------------------------------------------------------


def tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu_s(process: psutil.Process) -> float:
    total = 0.0
    for member in tree(process):
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def machine_cpu_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def tree_peak_rss_bytes(process: psutil.Process) -> int:
    total = 0
    for member in tree(process):
        try:
            status = Path(f"/proc/{member.pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) * 1024
    return total


# -- one round -------------------------------------------------------------------------


@dataclass
class Round:
    kind: str
    number: int
    emails_per_s: float = 0.0
    cpu_ms_per_email: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    peak_rss_mib: float = 0.0
    #: The rest of the machine during the throughput window: everything but the subscriber
    #: (emulator, publisher and collector, stand-ins), and how busy both cores were.
    stack_cpu_ms_per_email: float = 0.0
    machine_busy: float = 0.0
    non_sent: int = 0
    duplicates: int = 0
    duplicate_sends: int = 0
    unattributed_sends: int = 0
    missing_sends: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.number}"

    def problems(self) -> list[str]:
        """What went wrong in this round, one phrase each; empty for a clean round."""
        found = [
            f"{count} {what}"
            for count, what in (
                (self.non_sent, "non-sent results"),
                (self.duplicates, "duplicate results"),
                (self.duplicate_sends, "duplicate SES sends"),
                (self.unattributed_sends, "SES sends without a request marker"),
                (self.missing_sends, "requests with no SES send recorded"),
            )
            if count
        ]
        return found + self.notes


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="email-worker-bench-"))
        self.emulator = PubSubEmulator()
        self.metadata = MetadataServer()
        self.ses = SesStandIn()
        self.config_dir = self.workdir / "config"
        self.round_number = 0
        self.current_kind = ""  # "{kind}-{round}" of the subscriber being started (--env)

    # -- stack ---------------------------------------------------------------------

    def __enter__(self) -> Bench:
        self.metadata.start()
        self.ses.start()
        self.emulator.start()
        os.environ["PUBSUB_EMULATOR_HOST"] = self.emulator.host
        os.environ["GOOGLE_CLOUD_PROJECT"] = self.emulator.project_id
        from google.cloud import pubsub_v1

        self.subscriber = pubsub_v1.SubscriberClient()
        self.bulk_publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.01)
        )
        self.paced_publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=1, max_latency=0.001)
        )
        document = {
            "service_id": SERVICE,
            "service_role_arn": ROLE,
            "default_from_address": "billing@example.com",
            "allowed_from_domains": ["example.com"],
        }
        path = self.config_dir / "production" / f"{SERVICE}.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(document))
        if templated.KIND in self.args.contenders:
            plain = plain_request("check")
            self.templates_url = templated.publish(
                self.workdir / "templates", SERVICE, plain, marker("check")
            )
            templated.check_equivalent(self.templates_url, SERVICE, plain, marker("check"))
        return self

    def __exit__(self, *exc: object) -> None:
        self.bulk_publisher.stop()
        self.paced_publisher.stop()
        self.subscriber.close()
        self.emulator.close()
        self.ses.stop()
        self.metadata.stop()

    def base_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "EMAIL_WORKER_", "GCE_METADATA", "PUBSUB_"))
            and k not in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG")
        }
        env.update(
            PUBSUB_EMULATOR_HOST=self.emulator.host,
            GOOGLE_CLOUD_PROJECT=self.emulator.project_id,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_ENDPOINT_URL_SESV2=self.ses.endpoint,
            AWS_ENDPOINT_URL_STS=self.ses.endpoint,
            CLOUDSDK_CONFIG=str(self.workdir / "gcloud"),
            GCE_METADATA_HOST=self.metadata.host,
            GCE_METADATA_IP=self.metadata.host,
        )
        for setting in self.args.env:
            name, _, value = setting.partition("=")
            env[name] = value.replace("{kind}", self.current_kind)
        return env

    def worker_settings(self, kind: str) -> dict[str, str]:
        """The settings ``kind`` (the worker or a variant) gets on top of the benchmark's:
        --worker-env, then its --variant's, which win."""
        pairs = (setting.partition("=") for setting in self.args.worker_env)
        settings = {name: value for name, _, value in pairs}
        if kind == templated.KIND:
            settings["EMAIL_WORKER_TEMPLATES_URL"] = self.templates_url
        settings.update(self.args.variants.get(kind, {}))
        return settings

    def worker_tenancy(self, kind: str) -> str:
        """EMAIL_WORKER_TENANCY ``kind`` runs with (per-service unless its settings say)."""
        return self.worker_settings(kind).get("EMAIL_WORKER_TENANCY", "per-service")

    def is_worker(self, kind: str) -> bool:
        """Whether ``kind`` runs ``email-worker pull``: the worker or one of its variants."""
        return kind in ("worker", templated.KIND) or kind in self.args.variants

    def inbound(self, kind: str, queue: Any) -> tuple[str, str, dict[str, str]]:
        """The topic a round publishes to, the subscription read, and the worker's tenancy
        settings. With per-service tenancy the worker reads the service's own topic and the
        replay topic, as in production; the baselines read one shared topic."""
        if not self.is_worker(kind) or self.worker_tenancy(kind) != "per-service":
            return queue.topic, queue.subscription, {}
        emulator = self.emulator
        prefix = unique_name("bench")
        names: dict[str, str] = {}
        for topic_name, subscription_name in (
            (f"{prefix}-{SERVICE}", f"{prefix}-{SERVICE}-worker"),
            (f"{prefix}-replays", f"{prefix}-replays-worker"),
        ):
            topic = emulator.create_topic(topic_name)
            names[topic_name] = topic
            emulator.create_subscription(
                topic, subscription_name, dead_letter_topic=queue.dead_letter_topic
            )
        settings = {
            "EMAIL_WORKER_SERVICE_TOPIC": f"{prefix}-{{service}}",
            "EMAIL_WORKER_SERVICE_SUBSCRIPTION": f"{prefix}-{{service}}-worker",
            "EMAIL_WORKER_REPLAY_TOPIC": f"{prefix}-replays",
            "EMAIL_WORKER_REPLAY_SUBSCRIPTION": f"{prefix}-replays-worker",
        }
        return names[f"{prefix}-{SERVICE}"], f"{prefix}-{SERVICE}-worker", settings

    def start(
        self,
        kind: str,
        subscription: str,
        results_topic: str,
        dead_letter: str,
        tenancy: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        self.current_kind = f"{kind}-{self.round_number}"
        env = self.base_env()

        def short(path: str) -> str:
            return path.rsplit("/", 1)[-1]

        log = (self.workdir / f"{kind}.log").open("ab")
        if self.is_worker(kind):
            if not tenancy:  # the shared topic's subscription; per-service reads the service's
                env["EMAIL_WORKER_SUBSCRIPTION"] = short(subscription)
            env.update(
                EMAIL_WORKER_RESULTS_TOPIC=short(results_topic),
                EMAIL_WORKER_DEAD_LETTER_TOPIC=short(dead_letter),
                EMAIL_WORKER_ALLOWED_SERVICES=SERVICE,
                EMAIL_WORKER_SERVICE_CONFIG_URL=(
                    f"file://{self.config_dir}/{{environment}}/{{service_id}}.json"
                ),
                # The embedded ledger: every send claimed and recorded, as in production.
                EMAIL_WORKER_LEDGER=f"sqlite:///{self.workdir.resolve()}/ledger.db",
                **(tenancy or {}),
            )
            env.update(self.worker_settings(kind))
            argv = [str(VENV_BIN / "email-worker"), "pull"]
        else:  # baseline or lean: the same environment, a different script
            env.update(
                BASELINE_SUBSCRIPTION=short(subscription),
                BASELINE_RESULTS_TOPIC=short(results_topic),
                AWS_ACCESS_KEY_ID="bench-baseline",
                AWS_SECRET_ACCESS_KEY="bench-baseline",  # noqa: S106 - a stand-in's dummy key
                AWS_DEFAULT_REGION="eu-west-2",
            )
            argv = [str(VENV_BIN / "python"), str(ROOT / "bench" / SCRIPTS[kind])]
        with log:
            return subprocess.Popen(argv, env=env, stdout=log, stderr=log)  # noqa: S603

    def run_round(self, kind: str, number: int) -> Round:
        args = self.args
        self.round_number = number
        emulator = self.emulator
        queue = emulator.create_queue()
        results_topic = emulator.create_topic(unique_name("results"))
        results_subscription = emulator.create_subscription(results_topic)
        collector = Collector(self.subscriber, results_subscription)
        round_ = Round(kind, number)
        topic, subscription, tenancy = self.inbound(kind, queue)
        process = self.start(kind, subscription, results_topic, queue.dead_letter_topic, tenancy)
        ps = psutil.Process(process.pid)
        unattributed_before = self.ses.unattributed
        prefix = f"{kind}-{number}"
        warmup = [f"{prefix}-warmup-{n}" for n in range(args.warmup)]
        ids = [f"{prefix}-bulk-{n}" for n in range(args.requests)]
        paced = [f"{prefix}-paced-{n}" for n in range(int(args.rate * args.latency_seconds))]
        document = templated_document if kind == templated.KIND else request_document
        try:
            for request_id in warmup:
                self.bulk_publisher.publish(topic, document(request_id))
            collector.wait_for(warmup, timeout_s=120)

            # Throughput: N at once, clock from the first publish to the N-th result.
            payloads = [document(r) for r in ids]
            profiler = self.start_profiler(kind, number, process.pid)
            cpu_before = tree_cpu_s(ps)
            machine_before = machine_cpu_s()
            started = time.monotonic()
            for payload in payloads:
                self.bulk_publisher.publish(topic, payload)
            finished = collector.wait_for(ids, timeout_s=600)
            cpu_after = tree_cpu_s(ps)
            machine_after = machine_cpu_s()
            if profiler is not None:
                self.stop_profiler(profiler)
            round_.emails_per_s = args.requests / (finished - started)
            round_.cpu_ms_per_email = (cpu_after - cpu_before) * 1000 / args.requests
            machine_busy_s = machine_after - machine_before
            round_.stack_cpu_ms_per_email = (
                (machine_busy_s - (cpu_after - cpu_before)) * 1000 / args.requests
            )
            round_.machine_busy = machine_busy_s / (
                (finished - started) * (psutil.cpu_count() or 1)
            )

            # Latency at a fixed offered load.
            published: dict[str, float] = {}
            begin = time.monotonic()
            for n, request_id in enumerate(paced):
                payload = document(request_id)
                delay = begin + n / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                published[request_id] = time.monotonic()
                self.paced_publisher.publish(topic, payload)
            collector.wait_for(paced, timeout_s=120)
            if args.timings:
                # Monotonic clock: comparable with a subscriber's own time.monotonic() stamps.
                with Path(args.timings).open("a") as timings:
                    for r in paced:
                        record: dict[str, object] = {"round": prefix, "request_id": r}
                        record["published"] = published[r]
                        record["result"] = collector.arrivals[r]
                        timings.write(json.dumps(record) + "\n")
            latencies = sorted((collector.arrivals[r] - published[r]) * 1000 for r in paced)
            round_.p50_ms = statistics.median(latencies)
            round_.p99_ms = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            round_.peak_rss_mib = tree_peak_rss_bytes(ps) / 2**20
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                round_.notes.append("did not stop on SIGTERM within 30 s")
            # Results published just before the exit (a redelivery's, say) still count.
            collector.drain(quiet_s=1.0, limit_s=10.0)
            collector.close()
        round_.non_sent = sum(c for s, c in collector.statuses.items() if s != "sent")
        round_.duplicates = collector.duplicates
        sends = self.ses.send_counts([*warmup, *ids, *paced])
        round_.duplicate_sends = sum(c - 1 for c in sends if c > 1)
        round_.missing_sends = sends.count(0)
        round_.unattributed_sends = self.ses.unattributed - unattributed_before
        return round_

    # -- profiling -----------------------------------------------------------------

    def start_profiler(self, kind: str, number: int, pid: int) -> subprocess.Popen[bytes] | None:
        if self.args.profile is None or number != 1:
            return None
        out = Path(self.args.profile)
        out.mkdir(parents=True, exist_ok=True)
        self.profile_path = out / f"{kind}-throughput.txt"
        profiler = subprocess.Popen(  # noqa: S603
            [
                str(VENV_BIN / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "250",
                "--gil",  # only the thread holding the GIL: where Python spends CPU
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(self.profile_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # let py-spy attach
        return profiler

    def stop_profiler(self, profiler: subprocess.Popen[bytes]) -> None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)
        print_profile(self.profile_path)


def print_profile(path: Path, top: int = 25) -> None:
    """Self and inclusive sample counts per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].split("/")[-1] + ")"
            for f in stack.split(";")[1:]
        ]  # first entry is the thread
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"\nprofile: {path} ({total} busy samples)")
    print(f"  {'self %':>7}  {'incl %':>7}  function")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / total:7.1f}  {100 * inclusive[frame] / total:7.1f}  {frame}")
    print("  top inclusive:")
    for frame, count in inclusive.most_common(top):
        print(f"  {'':7}  {100 * count / total:7.1f}  {frame}")


# -- report ------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_gib = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} CPUs ({model}), {memory_gib:.1f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def report(rounds: list[Round], args: argparse.Namespace) -> int:
    print("\nper round:")
    print(
        f"  {'round':<12} {'emails/s':>9} {'CPU ms/email':>13} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'peak RSS MiB':>13} {'non-sent':>9} {'dup results':>12} {'dup sends':>10}"
    )
    for r in rounds:
        print(
            f"  {r.label:<12} {r.emails_per_s:9.0f} "
            f"{r.cpu_ms_per_email:13.2f} {r.p50_ms:8.1f} {r.p99_ms:8.1f} "
            f"{r.peak_rss_mib:13.0f} {r.non_sent:9d} {r.duplicates:12d} {r.duplicate_sends:10d}"
            + ("  " + "; ".join(r.notes) if r.notes else "")
        )

    every = (*CONTENDERS, *OPTIONAL_CONTENDERS, *args.variants)
    kinds = [kind for kind in every if any(r.kind == kind for r in rounds)]

    def median(kind: str, name: str) -> float:
        values: list[float] = [getattr(r, name) for r in rounds if r.kind == kind]
        return statistics.median(values) if values else float("nan")

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")

    # Issue 13's targets, against the lean baseline: at most its CPU per email, at least 1.5
    # times its throughput (and no duplicates, checked per round below).
    rows = [
        ("throughput (emails/s)", "emails_per_s", "%.0f", ">= 1.5x lean"),
        ("CPU ms per email (process tree)", "cpu_ms_per_email", "%.2f", "<= 1.0x lean"),
        (f"p50 latency ms at {args.rate:g}/s", "p50_ms", "%.1f", ""),
        (f"p99 latency ms at {args.rate:g}/s", "p99_ms", "%.1f", ""),
        ("peak RSS MiB", "peak_rss_mib", "%.0f", ""),
    ]
    print(
        f"\nmedians of {args.rounds} rounds, {args.requests} requests each, "
        f"CPU hog {'ON' if args.cpu_hog else 'off'} (machine: {machine()}):"
    )
    compared = [kind for kind in ("baseline", "lean") if kind in kinds and "worker" in kinds]
    # Each variant against the lean subscriber: (column heading, variant).
    variants = [
        (f"{kind[:4]}/lean", kind) for kind in args.variants if kind in kinds and "lean" in kinds
    ]
    # Templated requests against the same worker's plain ones (issue 23: at most 1.2x CPU).
    templated_vs = "worker" if {templated.KIND, "worker"} <= set(kinds) else None
    print(
        f"  {'':34} "
        + " ".join(f"{kind[:9]:>9}" for kind in kinds)
        + "".join(f" {'w/' + kind[:4]:>7}" for kind in compared)
        + "".join(f" {heading:>9}" for heading, _ in variants)
        + (f" {'tmpl/wrk':>9}" if templated_vs else "")
        + ("  target" if "lean" in compared else "")
    )
    verdicts = []
    for label, name, fmt, target in rows:
        values = {kind: median(kind, name) for kind in kinds}
        line = f"  {label:34} " + " ".join(f"{fmt % values[kind]:>9}" for kind in kinds)
        line += "".join(f" {ratio(values['worker'], values[kind]):6.2f}x" for kind in compared)
        line += "".join(f" {ratio(values[kind], values['lean']):8.2f}x" for _, kind in variants)
        if templated_vs:
            line += f" {ratio(values[templated.KIND], values['worker']):8.2f}x"
        if target and "lean" in compared:
            vs_lean = ratio(values["worker"], values["lean"])
            met = vs_lean >= 1.5 if name == "emails_per_s" else vs_lean <= 1.0
            verdicts.append(met)
            line += f"  {target} {'met' if met else 'NOT met'}"
        print(line)
    print(f"\nlogs: {args.logs}")
    broken = [(r, r.problems()) for r in rounds if r.problems()]
    if broken:
        print("\nFAILED: rounds with wrong or unclean results (figures above are not valid):")
        for r, problems in broken:
            print(f"  {r.label}: {'; '.join(problems)}")
        return 2
    if not all(verdicts):
        print("\nFAILED: a target was not met")
        return 1
    return 0


class CpuHog:
    """A child process spinning one core (a noisy neighbour) from ``start`` to ``stop``."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "while True: pass"], start_new_session=True
        )

    def stop(self) -> str | None:
        """Kill the hog; return a complaint if it had not kept spinning until now."""
        if self.process is None:
            return None
        died = self.process.poll()
        if died is None:
            self.process.kill()
        self.process.wait(timeout=10)
        return None if died is None else f"the CPU hog exited early (code {died})"


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options from ``argv`` (the command line's by default), checked:
    ``contenders`` becomes the tuple of contenders to rotate, variants included, and
    ``variants`` maps each variant's name to its settings. Other benchmarks built on
    :class:`Bench` start from ``parse_options([])``, so they get every option's default."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 all clean and targets met; 1 a target missed; 2 a round had "
        "non-sent, duplicate or unattributed results or sends, or did not stop cleanly.",
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests per throughput run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each subscriber")
    parser.add_argument("--rate", type=float, default=50.0, help="offered load for latency (/s)")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--profile", metavar="DIR", help="py-spy each subscriber's first round")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated subset of %(default)s to run (targets need worker and lean), "
        f"and optionally {','.join(OPTIONAL_CONTENDERS)}: the worker sent templated requests "
        "(bench/templated.py)",
    )
    parser.add_argument(
        "--cpu-hog",
        action="store_true",
        help="keep one core busy (a child process spinning) while the rounds run",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every subscriber; {kind} in VALUE becomes its kind and "
        "round (e.g. PYTHONPATH=DIR with an instrumenting sitecustomize.py)",
    )
    parser.add_argument(
        "--timings",
        metavar="FILE",
        help="append each latency-phase request's publish and result times (monotonic "
        "seconds) to FILE as JSON lines",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the worker (e.g. EMAIL_WORKER_CONCURRENCY=16)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:SETTING=VALUE[,SETTING=VALUE...]",
        help="one more contender: the worker with these settings added (after --worker-env), "
        "e.g. noledger:EMAIL_WORKER_LEDGER=none; repeatable",
    )
    args = parser.parse_args(argv)
    known = (*CONTENDERS, *OPTIONAL_CONTENDERS)
    contenders = tuple(kind for kind in known if kind in args.contenders.split(","))
    if not contenders or set(args.contenders.split(",")) - set(known):
        parser.error(f"--contenders takes a comma-separated subset of {','.join(known)}")
    args.variants = {}
    for variant in args.variant:
        name, _, settings = variant.partition(":")
        pairs = [setting.partition("=") for setting in settings.split(",")]
        if (
            not name.isidentifier()
            or name in (*known, *args.variants)
            or not all(key and sep for key, sep, _ in pairs)
        ):
            parser.error(f"--variant takes NAME:SETTING=VALUE[,SETTING=VALUE...], not {variant!r}")
        args.variants[name] = {key: value for key, _, value in pairs}
    args.contenders = contenders + tuple(args.variants)
    return args


def main() -> int:
    args = parse_options()
    contenders: tuple[str, ...] = args.contenders
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    hog = CpuHog()
    rounds: list[Round] = []
    with Bench(args) as bench:
        args.logs = bench.workdir
        if args.cpu_hog:
            hog.start()
            assert hog.process is not None
            print(f"CPU hog: ON (pid {hog.process.pid} spins one core while the rounds run)")
        else:
            print("CPU hog: off")
        try:
            for number in range(1, args.rounds + 1):
                # Rotate which goes first, so drift in background load hits all alike.
                shift = (number - 1) % len(contenders)
                for kind in contenders[shift:] + contenders[:shift]:
                    result = bench.run_round(kind, number)
                    rounds.append(result)
                    print(
                        f"round {number} {kind:8}: {result.emails_per_s:6.0f} emails/s, "
                        f"{result.cpu_ms_per_email:5.2f} CPU ms/email, "
                        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                        f"peak RSS {result.peak_rss_mib:.0f} MiB, "
                        f"{result.duplicates} dup results, {result.duplicate_sends} dup sends; "
                        f"rest of the stack {result.stack_cpu_ms_per_email:.2f} CPU ms/email, "
                        f"machine {result.machine_busy:.0%} busy",
                        flush=True,
                    )
        finally:
            complaint = hog.stop()
        if complaint is not None:  # when it died is unknown: every round is suspect
            for r in rounds:
                r.notes.append(complaint)
    return report(rounds, args)


if __name__ == "__main__":
    sys.exit(main())
