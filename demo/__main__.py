"""``make demo``: the whole pipeline on an embedded local stack, then everything stopped.

Starts the Pub/Sub emulator, moto (STS and SES v2) and a stand-in of the GCE metadata server
on free loopback ports; creates the topology with ``email-worker setup``; runs
``email-worker pull``; publishes five requests (a good one, one with 120 recipients, an
invalid one, one from an unverified sender and one naming another service than its topic's);
prints their results and the dead letters with ``email-worker dlq list``. Then it follows the
unverified sender's request as an operator would: ``email-worker status``, ``dlq show`` of
its dead letter, the cause fixed (the domain verified in SES), ``dlq replay``, and ``status``
again, now sent. Ctrl-C stops everything it started. The worker's log is kept, and its path
printed at the end.

The metadata stand-in and moto come from the test suite's support code: they exist to make
this demo and the tests run without a cloud account, never in production. The module is
longer than most (about 330 lines) so that the demo stays one file, read top to bottom in the
order of what it shows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROJECT = "demo-project"
SERVICE = "demo"
ROLE = "arn:aws:iam::123456789012:role/email-demo"
DEMO_TIMEOUT_S = 90


def check_prerequisites() -> None:
    """Name a missing prerequisite and how to install it, instead of failing later."""
    problems = []
    if shutil.which("java") is None:
        problems.append(
            "Java (17 or newer) is not on PATH: the Pub/Sub emulator needs it. "
            "Install it, e.g. `sudo apt-get install openjdk-17-jre-headless`."
        )
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        problems.append(
            "gcloud is not on PATH: install the Google Cloud CLI "
            "(https://cloud.google.com/sdk/docs/install)."
        )
    elif (
        subprocess.run(
            [gcloud, "beta", "emulators", "pubsub", "--help"],
            capture_output=True,
            timeout=60,
            check=False,
        ).returncode
        != 0
    ):
        problems.append(
            "gcloud's Pub/Sub emulator is not installed: run "
            "`gcloud components install pubsub-emulator beta` "
            "(or `sudo apt-get install google-cloud-cli-pubsub-emulator`)."
        )
    if problems:
        for problem in problems:
            print(f"demo: {problem}", file=sys.stderr)
        sys.exit(2)


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=out)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def requests_to_send() -> list[tuple[str, bytes]]:
    def request(**fields: Any) -> bytes:
        document = {
            "version": 1,
            "service_id": SERVICE,
            "from": "Demo <demo@example.com>",
            "to": ["alice@example.org"],
            "subject": "Hello from email-worker",
            "text": "This message went through Pub/Sub, the worker and (a stand-in of) SES.",
        }
        document.update(fields)
        return json.dumps(document).encode()

    return [
        ("good", request(request_id="demo-good")),
        (
            "120 recipients",
            request(request_id="demo-120", to=[f"reader{n}@example.org" for n in range(120)]),
        ),
        ("invalid", request(request_id="demo-invalid", subject="Hi\r\nBcc: x@example.org")),
        (
            "unverified sender",
            request(request_id="demo-unverified", **{"from": "news@unverified.example"}),
        ),
        # Published to the demo service's own topic, but naming another service.
        ("as another service", request(request_id="demo-impostor", service_id="billing")),
    ]


class Demo:
    """The running local stack and what the demo needs of it."""

    def __init__(self, stack: ExitStack, workdir: Path) -> None:
        # Imported late: the metadata stand-in must own GCE_METADATA_HOST before google.auth
        # loads.
        from tests.support.metadata_server import MetadataServer
        from tests.support.moto_server import MotoServer
        from tests.support.pubsub_emulator import PubSubEmulator

        heading("starting the local stack")
        metadata = stack.enter_context(MetadataServer(project_id=PROJECT))
        self.moto = stack.enter_context(MotoServer())
        self.emulator = PubSubEmulator(project_id=PROJECT).start()
        stack.callback(self.emulator.close)
        print(
            f"Pub/Sub emulator {self.emulator.host}, moto {self.moto.endpoint}, "
            f"metadata {metadata.host}"
        )
        self.moto.verify_email_identity("example.com")  # unverified.example: not yet
        write_service_config(workdir)
        self.env = worker_environment(
            workdir, self.emulator.host, self.moto.endpoint, metadata.host
        )
        self.log = workdir / "worker.log"
        self.results: Any = None

    def email_worker(self, *args: str, capture: bool = False) -> str:
        """Run ``email-worker ARGS`` as an operator would, showing the command line."""
        print(f"$ email-worker {' '.join(args)}", flush=True)
        completed = subprocess.run(
            [str(BIN / "email-worker"), *args],
            env=self.env,
            check=True,
            timeout=60,
            stdout=subprocess.PIPE if capture else None,
            text=True,
        )
        return completed.stdout or ""

    def wait_for_results(self, wanted: int, worker: subprocess.Popen[bytes]) -> list[Any]:
        """Results from our subscription on email-results, until ``wanted`` have come or
        time is up."""
        results: list[Any] = []
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        while len(results) < wanted and time.monotonic() < deadline:
            if worker.poll() is not None:
                print(f"demo: the worker exited early; see {self.log}", file=sys.stderr)
                break
            for received in self.emulator.pull(self.results, max_messages=10, timeout_s=2):
                results.append(json.loads(received.message.data))
        return results


def write_service_config(workdir: Path) -> None:
    config_dir = workdir / "config" / "production"
    config_dir.mkdir(parents=True)
    (config_dir / f"{SERVICE}.json").write_text(
        json.dumps(
            {
                "service_id": SERVICE,
                "service_role_arn": ROLE,
                "default_from_address": "demo@example.com",
                "allowed_from_domains": ["example.com", "unverified.example"],
            }
        )
    )


def worker_environment(
    workdir: Path, pubsub_host: str, moto_endpoint: str, metadata_host: str
) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "PUBSUB_EMULATOR_HOST": pubsub_host,
        "GCE_METADATA_HOST": metadata_host,
        "GCE_METADATA_IP": metadata_host,
        "AWS_ENDPOINT_URL_STS": moto_endpoint,
        "AWS_ENDPOINT_URL_SESV2": moto_endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "CLOUDSDK_CONFIG": str(workdir / "gcloud"),
        "EMAIL_WORKER_ALLOWED_SERVICES": SERVICE,
        "EMAIL_WORKER_SERVICE_CONFIG_URL": (
            f"file://{workdir}/config/{{environment}}/{{service_id}}.json"
        ),
        "EMAIL_WORKER_LEDGER": f"sqlite:///{Path(workdir).resolve()}/ledger.db",
    }
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name, None)  # the worker must get its AWS credentials from STS only
    return env


def describe(result: dict[str, Any]) -> str:
    if result["status"] == "sent":
        ids = result["message_ids"]
        return f"{len(ids)} SES message id(s): {', '.join(ids)}"
    error = result.get("error") or {}
    return f"{error.get('code')}: {error.get('message')}"


def send_five_requests(demo: Demo, worker: subprocess.Popen[bytes]) -> dict[str, str]:
    """Publish the five requests and print their results; return each one's status."""
    # Each service publishes to its own topic (per-service tenancy, docs/security.md).
    heading(f"publishing five requests to email-requests-{SERVICE}")
    topic = demo.emulator.publisher.topic_path(PROJECT, f"email-requests-{SERVICE}")
    labels = {}
    for label, data in requests_to_send():
        demo.emulator.publish(topic, data)
        labels[json.loads(data)["request_id"]] = label
        print(f"  {label}")

    heading("results on email-results")
    statuses = {}
    for result in demo.wait_for_results(len(labels), worker):
        statuses[result["request_id"]] = result["status"]
        label = labels.get(result["request_id"], "?")
        print(f"  {label:<18} {result['status']:<9} {describe(result)}")
    print(f"  SES (moto) accepted {len(demo.moto.sent_messages())} message(s)")
    return statuses


def replay_after_the_fix(demo: Demo, worker: subprocess.Popen[bytes]) -> str | None:
    """Follow the failed request from its id to its dead letter, fix the cause, replay it;
    return the replay's status."""
    request_id = "demo-unverified"
    heading(f"what became of {request_id}: email-worker status")
    demo.email_worker("status", SERVICE, request_id)

    heading("its dead letter: email-worker dlq show")
    listed = json.loads(demo.email_worker("dlq", "list", "--json", capture=True))
    message_id = next(d["message_id"] for d in listed if d["request_id"] == request_id)
    demo.email_worker("dlq", "show", message_id)

    heading("fixing the cause: the sending domain unverified.example is verified in SES (moto)")
    demo.moto.verify_email_identity("unverified.example")

    heading("replaying it: email-worker dlq replay")
    demo.email_worker("dlq", "replay", message_id, "--yes")
    status = None
    for result in demo.wait_for_results(1, worker):
        status = result["status"]
        print(f"  {result['request_id']:<18} {status:<9} {describe(result)}")

    heading(f"what became of {request_id} now: email-worker status")
    demo.email_worker("status", SERVICE, request_id)
    return status


def run(stack: ExitStack, workdir: Path) -> int:
    demo = Demo(stack, workdir)
    heading("email-worker setup")
    demo.email_worker("setup")
    # A subscription of our own on the results topic, made before anything is published.
    demo.results = demo.emulator.create_subscription(
        demo.emulator.publisher.topic_path(PROJECT, "email-results"), "demo-results"
    )

    heading(f"email-worker pull (log: {demo.log})")
    worker = stack.enter_context(process([str(BIN / "email-worker"), "pull"], demo.env, demo.log))
    statuses = send_five_requests(demo, worker)

    heading("email-worker dlq list")
    time.sleep(1)  # dead letters are published just before the request is acked
    demo.email_worker("dlq", "list")
    expected = {
        "demo-good": "sent",
        "demo-120": "sent",
        "demo-invalid": "rejected",
        "demo-unverified": "failed",
        "demo-impostor": "rejected",
    }
    if statuses != expected:
        print(f"demo: unexpected results {statuses}", file=sys.stderr)
        return 1

    replayed = replay_after_the_fix(demo, worker)
    if replayed != "sent":
        print(f"demo: the replay ended {replayed!r}, not sent", file=sys.stderr)
        return 1
    print(f"  SES (moto) accepted {len(demo.moto.sent_messages())} message(s) in all")
    heading("done: stopping everything")
    return 0


def main() -> int:
    check_prerequisites()
    sys.path.insert(0, str(ROOT))
    workdir = Path(tempfile.mkdtemp(prefix="email-worker-demo-"))
    # SIGTERM is handled like Ctrl-C, so the ExitStack below always runs.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with ExitStack() as stack:
            return run(stack, workdir)
    except KeyboardInterrupt:
        print("\ndemo: interrupted; everything it started has been stopped", file=sys.stderr)
        return 130
    finally:
        # Kept: the log is what to read when something above looks wrong.
        print(f"\nThe worker's log: {workdir / 'worker.log'} (delete {workdir} when done)")


if __name__ == "__main__":
    sys.exit(main())
