"""Thirty-two 10 MB attachments by reference at once: the worker's memory stays bounded.

``email-worker pull`` (a real process, 32 threads) gets 32 requests at once, each attaching
its own 10 MB object from the GCS emulator, with EMAIL_WORKER_ATTACHMENT_MEMORY_BYTES at
its default, 256 MiB (each 10 MB send counted at about 78 MiB with its copies, so three at a
time; 64 MiB leaves room for none beside the ~190 MiB the process itself reaches with its
libraries loaded). Sends beyond the budget wait their turn, so the process's peak resident
memory (``VmHWM``) stays under the budget plus 150 MiB, whatever the number of sends at
once, and every request is sent exactly once. SES is the benchmark's stand-in
(``bench/ses_standin.py``): moto parses and keeps every message, 10 MB ones too slowly for a
test of a minute, while the stand-in only counts each send by the marker in its subject.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.ses_standin import SesStandIn, marker
from tests.support.gcs_emulator import GcsEmulator
from tests.support.worker_process import ResultCollector, WorkerProcess
from tests.support.worker_stack import Stack, make_stack, request

REQUESTS = 32
OBJECT_BYTES = 10 * 1024 * 1024
BUDGET_BYTES = 256 * 1024 * 1024
HEADROOM_BYTES = 150 * 1024 * 1024
BUCKET = "billing-files"


@pytest.fixture
def ses() -> Iterator[SesStandIn]:
    standin = SesStandIn()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def stack(pubsub_env: Any, ses: SesStandIn, gcs_env: GcsEmulator, tmp_path: Path) -> Stack:
    gcs_env.reset()
    stack = make_stack(pubsub_env, tmp_path, ses.endpoint)
    stack.write_service(
        "billing",
        service_role_arn="arn:aws:iam::123456789012:role/email-sender",
        default_from_address="billing@example.com",
        allowed_from_domains=["example.com"],
        attachment_prefixes=[f"gs://{BUCKET}/out/"],
    )
    stack.env.update(
        EMAIL_WORKER_ATTACHMENT_MEMORY_BYTES=str(BUDGET_BYTES),
        EMAIL_WORKER_CONCURRENCY="32",
        STORAGE_EMULATOR_HOST=gcs_env.endpoint,
        AWS_ENDPOINT_URL_SESV2=ses.endpoint,
        AWS_ENDPOINT_URL_STS=ses.endpoint,
    )
    return stack


def peak_rss_bytes(pid: int) -> int:
    """The process's resident memory high-water mark (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def test_32_concurrent_10_mb_attachments_stay_within_the_memory_budget_and_each_is_sent_once(
    stack: Stack, gcs_env: GcsEmulator, ses: SesStandIn, tmp_path: Path
) -> None:
    gcs_env.create_bucket(BUCKET)
    ids = [f"big-{n}" for n in range(REQUESTS)]
    for request_id in ids:
        gcs_env.put_object(BUCKET, f"out/{request_id}.bin", os.urandom(OBJECT_BYTES))
    for request_id in ids:
        attachment = {
            "gcs": f"gs://{BUCKET}/out/{request_id}.bin",
            "filename": f"{request_id}.bin",
            "content_type": "application/octet-stream",
        }
        subject = f"Your files {marker(request_id)}"
        stack.publish(request(request_id=request_id, subject=subject, attachments=[attachment]))
    with ResultCollector(stack.emulator, stack.results_subscription) as collector:
        worker = WorkerProcess(stack.env, tmp_path / "worker.log")
        try:
            collector.wait_for_requests(set(ids), timeout_s=120)
            peak = peak_rss_bytes(worker.process.pid)
        finally:
            assert worker.terminate() == 0, worker.log()[-3000:]
    results = collector.snapshot()
    print(f"\npeak RSS {peak / 2**20:.0f} MiB with a budget of {BUDGET_BYTES / 2**20:.0f} MiB")
    assert Counter(r["request_id"] for r in results) == Counter(ids)
    assert {r["status"] for r in results} == {"sent"}, json.dumps(results[0])[:500]
    assert ses.send_counts(ids) == [1] * REQUESTS
    assert ses.unattributed == 0
    assert peak < BUDGET_BYTES + HEADROOM_BYTES
