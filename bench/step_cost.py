"""CPU of the worker's own steps for the benchmark's request, one step at a time.

    .venv/bin/python bench/step_cost.py [--calls 1000] [--repeats 5]

Single-threaded, no Pub/Sub: validating the request, building the message, taking its bytes
for SES, and the SES call through botocore's client and through `SendEmailCall`, against the
SES stand-in (started here, answering from its own threads; the figures are the calling
thread's CPU time). Each step runs ``--calls`` times per repeat, the steps take turns, and the
median over ``--repeats`` is printed. bench/run.py measures the whole worker; this tells how
its steps compare, without the noise of a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Appended, and `worker` imported first (bench.run puts ROOT first in the path), so that
# PYTHONPATH can point `worker` at another checkout's, to compare the two.
sys.path.append(str(ROOT))

import worker  # noqa: E402, F401
from bench.run import SERVICE, request_document  # noqa: E402
from bench.ses_standin import SesStandIn  # noqa: E402
from tests.support.metadata_server import MetadataServer  # noqa: E402


def cpu_ms_per_call(step: Callable[[], object], calls: int) -> float:
    started = time.thread_time()
    for _ in range(calls):
        step()
    return (time.thread_time() - started) * 1000 / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with SesStandIn() as ses, MetadataServer() as metadata:
        for name in [n for n in os.environ if n.startswith(("AWS_", "GCE_METADATA"))]:
            del os.environ[name]
        os.environ.update(
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_ENDPOINT_URL_SESV2=ses.endpoint,
            AWS_ENDPOINT_URL_STS=ses.endpoint,
            GCE_METADATA_HOST=metadata.host,
            GCE_METADATA_IP=metadata.host,
            CLOUDSDK_CONFIG=tempfile.mkdtemp(prefix="step-cost-gcloud-"),
        )
        from worker.formats.message import build_message
        from worker.formats.request import parse_request
        from worker.sending.envelope import prepare_message
        from worker.sending.ses_session import Session

        data = request_document("step-cost-1")
        request = parse_request(data, pubsub_message_id="m-1", default_service_id=SERVICE)
        message = build_message(request)
        prepared = prepare_message(message, default_from=None)
        session = Session("arn:aws:iam::123456789012:role/email-sender")
        call = getattr(session, "_send_call", None)  # None in a checkout without it
        params: dict[str, Any] = {
            "FromEmailAddress": prepared.from_address,
            "Destination": {"ToAddresses": list(prepared.recipients)},
            "Content": {"Raw": {"Data": prepared.raw}},
        }
        steps: dict[str, Callable[[], object]] = {
            "parse and validate the request": lambda: parse_request(
                data, pubsub_message_id="m-1", default_service_id=SERVICE
            ),
            "build the message": lambda: build_message(request),
            "take its bytes for SES": lambda: prepare_message(message, default_from=None),
            "SendEmail, botocore's client": lambda: session._ses.send_email(**params),
        }
        if call is not None:
            steps["SendEmail, SendEmailCall"] = lambda: call(**params)
        for step in steps.values():  # warm up: credentials, connections, caches
            cpu_ms_per_call(step, 50)
        results: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.repeats):
            for name, step in steps.items():
                results[name].append(cpu_ms_per_call(step, args.calls))
    print(f"CPU ms per call, median of {args.repeats} x {args.calls} calls (calling thread):")
    for name, values in results.items():
        spread = ", ".join(f"{v:.3f}" for v in values)
        print(f"  {name:32} {statistics.median(values):7.3f}   ({spread})")


if __name__ == "__main__":
    main()
