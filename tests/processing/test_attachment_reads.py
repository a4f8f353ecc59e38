"""Attachments by reference through the pipeline: read from the GCS emulator at send time,
pinned to the generation of the first claim, size-checked before any read or send."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.processing.test_pipeline import deps_for
from tests.support.clock import ManualClock
from tests.support.gcs_emulator import GcsEmulator
from tests.support.ports import free_port
from worker.config.gcs_uri import parse_prefix_uri
from worker.ledger import LedgerKey, SqliteLedger
from worker.processing.attachment_reads import held_in_memory
from worker.processing.memory_budget import MemoryBudget
from worker.processing.pipeline import Delivery, Status, process
from worker.sending import errors
from worker.sending.attachment_store import AttachmentStore
from worker.sending.service_config import ServiceConfig
from worker.sending.ses_session import Session
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession

BUCKET = "billing-files"
CONFIG = ServiceConfig(
    service_id="billing",
    service_role_arn="arn:aws:iam::123456789012:role/x",
    default_from_address="billing@example.com",
    attachment_prefixes=(parse_prefix_uri(f"gs://{BUCKET}/out/"),),
)


@pytest.fixture
def bucket(gcs_env: GcsEmulator) -> str:
    gcs_env.reset()
    return gcs_env.create_bucket(BUCKET)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    clock = ManualClock(1_800_000_000.0)
    with SqliteLedger(tmp_path / "ledger.db", claim_lease_s=90, clock=clock) as opened:
        yield opened


def delivery(*names: str, message_id: str = "m1", attempt: int = 1) -> Delivery:
    request = {
        "version": 1,
        "request_id": "invoice-7",
        "service_id": "billing",
        "to": ["alice@example.net"],
        "subject": "Your invoice",
        "text": "Attached.",
        "attachments": [
            {"filename": f"file-{i}.bin", "content_type": "application/pdf", "gcs": name}
            for i, name in enumerate(names)
        ],
    }
    return Delivery(json.dumps(request).encode(), {}, message_id, delivery_attempt=attempt)


def uri(name: str) -> str:
    return f"gs://{BUCKET}/{name}"


def run(
    session: RecordingSession, item: Delivery, ledger: SqliteLedger | None = None, **env: str
) -> tuple[Status, str | None]:
    deps = deps_for(session, env, sleep=lambda _: None, ledger=ledger)
    outcome = process(item, deps)
    return outcome.status, outcome.error_code


def attachment_bytes(message: EmailMessage | None) -> list[bytes]:
    assert message is not None
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return [part.get_content() for part in parsed.iter_attachments()]


def failing_once(call: int) -> list[str]:
    if call == 1:
        raise errors.TransientError("SES is down")
    return ["ses-1"]


def test_an_attachment_by_reference_is_read_at_send_time_and_attached(
    gcs_env: GcsEmulator, bucket: str
) -> None:
    gcs_env.put_object(bucket, "out/a.pdf", b"%PDF first")
    gcs_env.put_object(bucket, "out/b.pdf", b"%PDF second")
    session = RecordingSession(service_config=CONFIG)
    assert run(session, delivery(uri("out/a.pdf"), uri("out/b.pdf")))[0] is Status.SENT
    assert attachment_bytes(session.last_message) == [b"%PDF first", b"%PDF second"]


def test_the_generation_read_first_is_pinned_in_the_ledger(
    gcs_env: GcsEmulator, bucket: str, ledger: SqliteLedger
) -> None:
    gcs_env.put_object(bucket, "out/a.pdf", b"v1")
    generation = gcs_env.client().bucket(bucket).get_blob("out/a.pdf").generation
    run(RecordingSession(service_config=CONFIG), delivery(uri("out/a.pdf")), ledger)
    record = ledger.get(LedgerKey("billing", "invoice-7"))
    assert record is not None
    assert record.attachment_generations == (generation,)


def test_an_object_overwritten_after_the_first_claim_is_attachment_changed_on_redelivery(
    gcs_env: GcsEmulator, bucket: str, ledger: SqliteLedger
) -> None:
    gcs_env.put_object(bucket, "out/a.pdf", b"the invoice")
    session = RecordingSession(failing_once, service_config=CONFIG)
    first = run(session, delivery(uri("out/a.pdf")), ledger, EMAIL_WORKER_SEND_MAX_ATTEMPTS="1")
    assert first[0] is Status.RETRY
    gcs_env.put_object(bucket, "out/a.pdf", b"another invoice")
    again = run(session, delivery(uri("out/a.pdf"), attempt=2), ledger)
    assert again == (Status.REJECTED, "attachment_changed")
    assert session.calls == 1


def test_an_object_deleted_after_the_first_claim_is_attachment_not_found_on_redelivery(
    gcs_env: GcsEmulator, bucket: str, ledger: SqliteLedger
) -> None:
    gcs_env.put_object(bucket, "out/a.pdf", b"the invoice")
    session = RecordingSession(failing_once, service_config=CONFIG)
    run(session, delivery(uri("out/a.pdf")), ledger, EMAIL_WORKER_SEND_MAX_ATTEMPTS="1")
    gcs_env.client().bucket(bucket).blob("out/a.pdf").delete()
    again = run(session, delivery(uri("out/a.pdf"), attempt=2), ledger)
    assert again == (Status.REJECTED, "attachment_not_found")
    assert session.calls == 1


def test_a_redelivery_of_an_unchanged_object_sends_the_same_bytes(
    gcs_env: GcsEmulator, bucket: str, ledger: SqliteLedger
) -> None:
    gcs_env.put_object(bucket, "out/a.pdf", b"the invoice")
    session = RecordingSession(failing_once, service_config=CONFIG)
    run(session, delivery(uri("out/a.pdf")), ledger, EMAIL_WORKER_SEND_MAX_ATTEMPTS="1")
    assert run(session, delivery(uri("out/a.pdf"), attempt=2), ledger)[0] is Status.SENT
    assert attachment_bytes(session.last_message) == [b"the invoice"]


def test_a_missing_object_is_attachment_not_found_and_nothing_is_sent(bucket: str) -> None:
    session = RecordingSession(service_config=CONFIG)
    assert run(session, delivery(uri("out/none.pdf"))) == (Status.REJECTED, "attachment_not_found")
    assert session.calls == 0


def test_an_object_too_big_for_ses_is_message_too_large_before_it_is_read(
    gcs_env: GcsEmulator, bucket: str
) -> None:
    gcs_env.put_object(bucket, "out/big.bin", b"\0" * 30_000_000)
    session = RecordingSession(service_config=CONFIG)
    assert run(session, delivery(uri("out/big.bin"))) == (Status.REJECTED, "message_too_large")
    assert session.calls == 0


def test_an_unreachable_storage_is_retried_then_handed_back(bucket: str) -> None:
    dead = storage.Client(
        project="test-project",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{free_port()}"},
    )
    session = RecordingSession(service_config=CONFIG)
    deps = deps_for(
        session,
        {"EMAIL_WORKER_SEND_MAX_ATTEMPTS": "3"},
        sleep=lambda _: None,
        attachment_store=AttachmentStore(dead),
    )
    outcome = process(delivery(uri("out/a.pdf")), deps)
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "provider_unavailable")
    assert session.calls == 0


def test_a_29_mb_attachment_arrives_at_ses_byte_for_byte(
    gcs_env: GcsEmulator, bucket: str, aws_env: Any, moto: Any, tmp_path: Path
) -> None:
    content = os.urandom(29_000_000)
    gcs_env.put_object(bucket, "out/large.bin", content)
    config = tmp_path / "production" / "billing.json"
    config.parent.mkdir()
    config.write_text(
        json.dumps(
            {
                "service_role_arn": CONFIG.service_role_arn,
                "default_from_address": "billing@example.com",
                "attachment_prefixes": [f"gs://{BUCKET}/out/"],
            }
        )
    )
    template = f"file://{tmp_path}/{{environment}}/{{service_id}}.json"
    sessions = SessionCache(lambda sid: Session.for_service(sid, config_url=template), ttl_s=60)
    deps = replace(deps_for(RecordingSession(), {}), sessions=sessions)
    assert process(delivery(uri("out/large.bin")), deps).status is Status.SENT
    [sent] = moto.sent_messages()
    parsed = email.message_from_bytes(sent.raw_data.encode(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    [attached] = list(parsed.iter_attachments())
    assert attached.get_content() == content


def test_a_send_beyond_the_memory_budget_waits_for_the_one_holding_it(
    gcs_env: GcsEmulator, bucket: str
) -> None:
    gcs_env.put_object(bucket, "out/a.bin", b"a" * 10)
    gcs_env.put_object(bucket, "out/b.bin", b"b" * 10)
    in_ses, finish = threading.Event(), threading.Event()

    def slow_first(call: int) -> list[str]:
        if call == 1:
            in_ses.set()
            finish.wait(timeout=30)
        return [f"ses-{call}"]

    session = RecordingSession(slow_first, service_config=CONFIG)
    # Room for one 10-byte attachment with the copies its send makes, not for two.
    deps = deps_for(session, {}, attachment_budget=MemoryBudget(held_in_memory(10) + 5))
    outcomes: list[Status] = []
    first = threading.Thread(
        target=lambda: outcomes.append(process(delivery(uri("out/a.bin")), deps).status)
    )
    first.start()
    assert in_ses.wait(timeout=30)
    second = threading.Thread(
        target=lambda: outcomes.append(process(delivery(uri("out/b.bin")), deps).status)
    )
    second.start()
    time.sleep(0.5)
    in_use = deps.attachment_budget.in_use_bytes
    assert (session.calls, in_use) == (1, held_in_memory(10))  # b waits its turn
    finish.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert outcomes == [Status.SENT, Status.SENT]
    assert session.calls == 2
    assert deps.attachment_budget.in_use_bytes == 0


def test_the_worked_example_in_the_docs_sends_its_attachment(gcs_env: GcsEmulator) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    [example] = [json.loads(b) for b in blocks if '"gcs"' in b]
    gcs_env.reset()
    gcs_env.create_bucket("billing-attachments")
    gcs_env.put_object("billing-attachments", "outgoing/2026/annual-report.pdf", b"%PDF report")
    config = replace(
        CONFIG, attachment_prefixes=(parse_prefix_uri("gs://billing-attachments/outgoing/"),)
    )
    session = RecordingSession(service_config=config)
    item = Delivery(json.dumps(example).encode(), {}, "m1", delivery_attempt=1)
    deps = deps_for(session, {"EMAIL_WORKER_SERVICE_ID": "billing"})
    assert process(item, deps).status is Status.SENT
    assert attachment_bytes(session.last_message) == [b"%PDF report"]


def test_an_attachment_is_counted_with_the_copies_its_send_makes() -> None:
    # The bytes, the message's base64, SES's copy of the message and its request (twice).
    assert held_in_memory(10 * 2**20) > 7 * 10 * 2**20
    assert held_in_memory(0) == 0
