"""The dead-letter library: what a dead letter says about itself, and replays and purges on
the emulator in small batches, including publishes that fail part-way."""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from google.api_core.exceptions import ServiceUnavailable

from tests.support.cli_runner import dead_letter, worker_reason
from tests.support.worker_stack import Stack, make_stack, request
from worker.ops.dead_letter_queue import DeadLetterQueue
from worker.ops.dead_letters import DeadLetter

# -- DeadLetter ---------------------------------------------------------------------------


def letter(data: bytes = b"{}", /, **attributes: str) -> DeadLetter:
    return DeadLetter(
        message_id="42",
        data=data,
        attributes=attributes,
        publish_time=dt.datetime(2026, 11, 26, 5, 0, tzinfo=dt.UTC),
    )


def test_replay_attributes_keep_the_originals_and_drop_every_reason() -> None:
    dead = letter(
        origin="tests",
        trace="abc",
        CloudPubSubDeadLetterSourceDeliveryCount="5",
        CloudPubSubDeadLetterSourceSubscription="email-requests-worker",
        **worker_reason("r1"),
    )
    assert dead.replay_attributes() == {
        "origin": "tests",
        "trace": "abc",
        "email_worker_replay_count": "1",
        # Which request it was, for the worker's ledger check of a per-service replay.
        "email_worker_service_id": "billing",
        "email_worker_request_id": "r1",
    }


def test_replay_attributes_increment_an_existing_replay_count() -> None:
    dead = letter(email_worker_replay_count="2", **worker_reason("r1"))
    assert dead.replay_attributes()["email_worker_replay_count"] == "3"


def test_the_reason_of_a_worker_dead_letter_is_its_error_code_and_message() -> None:
    dead = letter(**worker_reason("r1", code="sender_not_allowed", message="from domain"))
    assert dead.reason == "sender_not_allowed: from domain"


def test_the_reason_of_a_pubsub_dead_letter_is_its_delivery_count() -> None:
    dead = letter(CloudPubSubDeadLetterSourceDeliveryCount="7")
    assert dead.delivery_count == 7
    assert "7 deliveries" in dead.reason


def test_request_and_service_ids_fall_back_to_the_request_itself() -> None:
    dead = letter(json.dumps(request(request_id="inv-9")).encode())
    assert dead.request_id == "inv-9"
    assert dead.service_id == "billing"


def test_a_dead_letter_nested_too_deep_has_no_request_and_is_not_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def must_not_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("data nested this deep must not reach json.loads")

    dead = letter(b"[" * 100_000 + b"]" * 100_000)
    monkeypatch.setattr("worker.ops.dead_letters.json.loads", must_not_parse)
    assert dead.request is None
    assert dead.request_id is None


def test_a_dead_letter_that_is_not_json_has_no_request() -> None:
    dead = letter(b"\xff\xfe")
    assert dead.request is None
    assert dead.request_id is None
    assert dead.reason == "unknown (no reason attributes)"


def test_age_counts_from_the_dead_letters_publish_time() -> None:
    now = dt.datetime(2026, 11, 26, 5, 1, 30, tzinfo=dt.UTC)
    assert letter().age_s(now) == 90.0


# -- DeadLetterQueue on the emulator ------------------------------------------------------


@pytest.fixture
def stack(pubsub_env: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, "")


def queue_for(stack: Stack, publish: Any = None, batch_size: int = 100) -> DeadLetterQueue:
    emulator = stack.emulator

    def real_publish(topic: str, data: bytes, attributes: Any) -> Any:
        return emulator.publisher.publish(topic, data, **attributes)

    return DeadLetterQueue(
        emulator.subscriber,
        stack.queue.dead_letter_subscription,
        publish=publish or real_publish,
        requests_topic=stack.queue.topic,
        rpc_timeout_s=5,
        publish_timeout_s=5,
        batch_size=batch_size,
    )


def fill(stack: Stack, count: int) -> list[str]:
    return [
        dead_letter(stack, request(request_id=f"r{n}"), **worker_reason(f"r{n}"))
        for n in range(count)
    ]


def on_requests_topic(stack: Stack, expected: int) -> list[str]:
    messages = stack._collect(stack.queue.subscription, expected, 30) if expected else []
    assert stack.nothing_more(stack.queue.subscription)
    return [json.loads(m.message.data)["request_id"] for m in messages]


def test_peek_returns_everything_oldest_first_and_leaves_it_there(stack: Stack) -> None:
    ids = fill(stack, 5)
    queue = queue_for(stack, batch_size=2)
    assert [d.message_id for d in queue.peek()] == ids
    assert [d.message_id for d in queue.peek()] == ids


def test_a_sweep_longer_than_the_lease_keeps_holding_what_it_has_seen(stack: Stack) -> None:
    fill(stack, 3)
    queue = DeadLetterQueue(
        stack.emulator.subscriber,
        stack.queue.dead_letter_subscription,
        batch_size=1,
        lease_s=10,
    )
    visible_meanwhile: list[Any] = []

    def visit(dead: DeadLetter) -> None:
        if dead.request_id == "r2":
            # 12 s in: the first dead letter's first lease (10 s) has run out unless renewed.
            visible_meanwhile.extend(
                stack.emulator.pull(stack.queue.dead_letter_subscription, timeout_s=1, ack=False)
            )
        else:
            time.sleep(6)

    assert queue.scan(visit) == 3
    assert visible_meanwhile == []
    assert len(queue_for(stack).peek()) == 3


def test_replay_in_several_batches_replays_each_dead_letter_once(stack: Stack) -> None:
    ids = fill(stack, 7)
    report = queue_for(stack, batch_size=3).replay(ids)
    assert report.ok
    assert sorted(report.replayed) == sorted(ids)
    assert sorted(on_requests_topic(stack, 7)) == [f"r{n}" for n in range(7)]
    assert queue_for(stack).peek() == []


def test_a_replay_whose_publish_fails_part_way_loses_nothing(stack: Stack) -> None:
    ids = fill(stack, 7)
    calls = 0

    def publish(topic: str, data: bytes, attributes: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 4:
            failed: Future[Any] = Future()
            failed.set_exception(ServiceUnavailable("injected"))
            return failed
        return stack.emulator.publisher.publish(topic, data, **attributes)

    report = queue_for(stack, publish, batch_size=3).replay(ids)
    # Batch 1 (3) is replayed; in batch 2 the first publish fails and the other two succeed;
    # the replay stops there, so the last dead letter is not attempted.
    assert not report.ok
    assert len(report.replayed) == 5
    assert len(report.failed) == 1
    assert len(report.skipped) == 1
    replayed = on_requests_topic(stack, 5)
    remaining: list[str] = []
    for dead in queue_for(stack).peek():
        assert dead.request_id is not None
        remaining.append(dead.request_id)
    assert sorted(replayed + remaining) == [f"r{n}" for n in range(7)]  # each exactly once
    assert set(report.failed) | set(report.skipped) == {
        d.message_id for d in queue_for(stack).peek()
    }


def test_a_publish_that_raises_at_once_counts_as_failed_and_loses_nothing(stack: Stack) -> None:
    ids = fill(stack, 2)

    def publish(topic: str, data: bytes, attributes: Any) -> Any:
        raise RuntimeError("publisher closed")

    report = queue_for(stack, publish).replay(ids)
    assert report.replayed == []
    assert set(report.failed) == set(ids)
    assert "publisher closed" in report.failed[ids[0]]
    assert on_requests_topic(stack, 0) == []
    assert len(queue_for(stack).peek()) == 2


def test_dead_letters_arriving_after_the_snapshot_are_not_replayed(stack: Stack) -> None:
    fill(stack, 2)
    queue = queue_for(stack)
    snapshot = queue.message_ids()
    late = dead_letter(stack, request(request_id="late"), **worker_reason("late"))
    report = queue.replay(snapshot)
    assert report.ok
    assert sorted(on_requests_topic(stack, 2)) == ["r0", "r1"]
    assert [d.message_id for d in queue.peek()] == [late]


def test_purge_removes_only_the_given_ids_and_reports_unknown_ones(stack: Stack) -> None:
    ids = fill(stack, 4)
    queue = queue_for(stack, batch_size=3)
    report = queue.purge([ids[0], ids[3], "999999"])
    assert sorted(report.purged) == sorted([ids[0], ids[3]])
    assert report.not_found == ["999999"]
    assert [d.message_id for d in queue.peek()] == ids[1:3]
