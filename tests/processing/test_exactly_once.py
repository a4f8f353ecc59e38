"""Exactly one email per request, end to end: the Pub/Sub emulator, moto and a real ledger.

Each behaviour runs on both ledger backends: Firestore (its emulator) and SQLite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port
from tests.support.worker_stack import Stack, make_stack, request
from worker.app.runtime import build_runtime
from worker.ledger import LedgerKey, SqliteLedger, StoredResult, content_hash
from worker.processing.pipeline import Delivery

DUPLICATE = {"request_id": "invoice-2026-0042"}
LEDGER_FIELDS = ("request_id", "service_id", "status", "message_ids", "error", "version")


@pytest.fixture(params=["firestore", "sqlite"])
def stack(
    request: pytest.FixtureRequest, pubsub_env: Any, fault_proxy: Any, tmp_path: Path
) -> Stack:
    built = make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)
    if request.param == "firestore":
        request.getfixturevalue("firestore_env")  # FIRESTORE_EMULATOR_HOST, for this process
        built.env["EMAIL_WORKER_LEDGER"] = "firestore"
    return built


def test_a_request_published_three_times_is_sent_once_with_three_identical_results(
    stack: Stack, moto: Any
) -> None:
    with stack.running():
        message_ids = [stack.publish(request(**DUPLICATE)) for _ in range(3)]
        results = stack.results(3)
        assert stack.nothing_more(stack.results_subscription)
    assert len(moto.sent_messages()) == 1
    assert {r["pubsub_message_id"] for r in results} == set(message_ids)
    assert [r["status"] for r in results] == ["sent"] * 3
    same = [{k: r[k] for k in LEDGER_FIELDS} for r in results]
    assert same[0] == same[1] == same[2]
    assert same[0]["message_ids"] == [moto.sent_messages()[0].message_id]


def test_a_request_id_reused_for_other_content_is_rejected_dead_lettered_and_not_sent(
    stack: Stack, moto: Any
) -> None:
    with stack.running():
        stack.publish(request(**DUPLICATE))
        [first] = stack.results(1)
        stack.publish(request(**DUPLICATE, subject="A different invoice"))
        [second] = stack.results(1)
        [dead] = stack.dead_letters(1)
    assert first["status"] == "sent"
    assert second["status"] == "rejected"
    assert second["error"]["code"] == "request_id_conflict"
    assert dead.attributes["email_worker_error_code"] == "request_id_conflict"
    assert len(moto.sent_messages()) == 1


def test_a_redelivery_after_a_lost_ack_is_not_sent_again(stack: Stack, moto: Any) -> None:
    runtime = build_runtime(stack.settings())
    delivery = Delivery(
        json.dumps(request(**DUPLICATE)).encode(), {}, message_id="m-1", delivery_attempt=1
    )
    acks: list[str] = []
    try:
        # The first delivery's ack never reaches Pub/Sub, which delivers the message again.
        runtime.handler(delivery, ack=lambda: acks.append("lost"), nack=lambda: None)
        again = Delivery(delivery.data, {}, message_id="m-1", delivery_attempt=2)
        runtime.handler(again, ack=lambda: acks.append("acked"), nack=lambda: None)
    finally:
        runtime.close()
    results = stack.results(2)
    assert acks == ["lost", "acked"]
    assert len(moto.sent_messages()) == 1
    assert [r["attempt"] for r in results] == [1, 2]
    assert results[0]["message_ids"] == results[1]["message_ids"]


def test_a_firestore_outage_is_nacked_and_nothing_is_sent(
    pubsub_env: Any, fault_proxy: Any, tmp_path: Path, moto: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nothing listens
    runtime = build_runtime(stack.settings(EMAIL_WORKER_LEDGER="firestore"))
    settled: list[str] = []
    try:
        delivery = Delivery(json.dumps(request(**DUPLICATE)).encode(), {}, "m-1", 1)
        outcome = runtime.handler(
            delivery, ack=lambda: settled.append("ack"), nack=lambda: settled.append("nack")
        )
    finally:
        runtime.close()
    assert settled == ["nack"]
    assert outcome.error_code == "ledger_unavailable"
    assert moto.sent_messages() == []
    assert stack.nothing_more(stack.results_subscription, wait_s=1)


def test_a_delivery_whose_request_another_is_sending_waits_leased_without_a_redelivery(
    pubsub_env: Any, fault_proxy: Any, tmp_path: Path, moto: Any
) -> None:
    stack = make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)
    data = json.dumps(request(**DUPLICATE)).encode()
    key = LedgerKey("billing", DUPLICATE["request_id"])
    path = stack.env["EMAIL_WORKER_LEDGER"].removeprefix("sqlite:///")
    with SqliteLedger(path, claim_lease_s=90) as other_worker:
        # Another worker has claimed the request and is sending it.
        other_worker.claim(key, owner="other-worker", content_hash=content_hash(data))
        with stack.running():
            stack.emulator.publish(stack.queue.topic, data)
            assert stack.nothing_more(stack.results_subscription, wait_s=5)
            stored = StoredResult(status="sent", message_ids=("ses-by-the-other-worker",))
            assert other_worker.complete(key, owner="other-worker", result=stored)
            [result] = stack.results(1)
    assert result["message_ids"] == ["ses-by-the-other-worker"]
    # Kept leased and looked at again, not nacked: Pub/Sub never delivered it a second time.
    assert result["attempt"] == 1
    assert moto.sent_messages() == []
