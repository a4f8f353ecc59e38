"""``make demo``: the whole pipeline on an embedded local stack, then everything stopped.

Starts the Pub/Sub emulator, moto (STS and SES v2) and a stand-in of the GCE metadata server
on free loopback ports; creates the topology with ``email-worker setup``; runs
``email-worker pull``; publishes four requests (a good one, one with 120 recipients, an
invalid one and one from an unverified sender); prints their results and then the dead
letters with ``email-worker dlq list``. Ctrl-C stops everything it started.

The metadata stand-in and moto come from the test suite's support code: they exist to make
this demo and the tests run without a cloud account, never in production.
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


def run(stack: ExitStack, workdir: Path) -> int:
    # Imported late: the metadata stand-in must own GCE_METADATA_HOST before google.auth loads.
    from tests.support.metadata_server import MetadataServer
    from tests.support.moto_server import MotoServer
    from tests.support.pubsub_emulator import PubSubEmulator

    heading("starting the local stack")
    metadata = stack.enter_context(MetadataServer(project_id=PROJECT))
    moto = stack.enter_context(MotoServer())
    emulator = PubSubEmulator(project_id=PROJECT).start()
    stack.callback(emulator.close)
    print(f"Pub/Sub emulator {emulator.host}, moto {moto.endpoint}, metadata {metadata.host}")

    moto.verify_email_identity("example.com")  # unverified.example stays unverified
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
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "PUBSUB_EMULATOR_HOST": emulator.host,
        "GCE_METADATA_HOST": metadata.host,
        "GCE_METADATA_IP": metadata.host,
        "AWS_ENDPOINT_URL_STS": moto.endpoint,
        "AWS_ENDPOINT_URL_SESV2": moto.endpoint,
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

    heading("email-worker setup")
    subprocess.run([str(BIN / "email-worker"), "setup"], env=env, check=True, timeout=60)

    # A subscription of our own on the results topic, made before anything is published.
    results = emulator.create_subscription(
        emulator.publisher.topic_path(PROJECT, "email-results"), "demo-results"
    )

    heading("email-worker pull (log: worker.log)")
    worker = stack.enter_context(
        process([str(BIN / "email-worker"), "pull"], env, workdir / "worker.log")
    )

    # Each service publishes to its own topic (per-service tenancy, docs/security.md).
    heading(f"publishing five requests to email-requests-{SERVICE}")
    topic = emulator.publisher.topic_path(PROJECT, f"email-requests-{SERVICE}")
    labels = {}
    for label, data in requests_to_send():
        emulator.publish(topic, data)
        labels[json.loads(data)["request_id"]] = label
        print(f"  {label}")

    heading("results on email-results")
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + DEMO_TIMEOUT_S
    while len(seen) < len(labels) and time.monotonic() < deadline:
        if worker.poll() is not None:
            print("demo: the worker exited early; see worker.log", file=sys.stderr)
            break
        for received in emulator.pull(results, max_messages=10, timeout_s=2):
            result = json.loads(received.message.data)
            seen[result["request_id"]] = result
            error = result.get("error") or {}
            ids = result["message_ids"]
            detail = (
                f"{len(ids)} SES message id(s): {', '.join(ids)}"
                if result["status"] == "sent"
                else f"{error.get('code')}: {error.get('message')}"
            )
            print(f"  {labels.get(result['request_id'], '?'):<18} {result['status']:<9} {detail}")
    sent_count = len(moto.sent_messages())
    print(f"  SES (moto) accepted {sent_count} message(s)")

    heading("email-worker dlq list")
    time.sleep(1)  # dead letters are published just before the request is acked
    subprocess.run([str(BIN / "email-worker"), "dlq", "list"], env=env, check=True, timeout=60)

    expected = {
        "demo-good": "sent",
        "demo-120": "sent",
        "demo-invalid": "rejected",
        "demo-unverified": "failed",
        "demo-impostor": "rejected",
    }
    actual = {request_id: result["status"] for request_id, result in seen.items()}
    if actual != expected:
        print(f"demo: unexpected results {actual}", file=sys.stderr)
        return 1
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
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
