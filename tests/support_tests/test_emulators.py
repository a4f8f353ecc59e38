"""The GCS and Pub/Sub emulators work with the real Google client libraries."""

from __future__ import annotations

from google.cloud import pubsub_v1, storage

from tests.support.gcs_emulator import GcsEmulator
from tests.support.process import group_members
from tests.support.pubsub_emulator import PubSubEmulator


def test_gcs_object_round_trip(gcs_env: GcsEmulator) -> None:
    bucket = gcs_env.create_bucket()
    gcs_env.put_object(bucket, "templates/welcome.html", b"<p>hello \xe2\x9c\x93</p>")

    # Production-style client: only STORAGE_EMULATOR_HOST points it at the emulator.
    client = storage.Client(project="test-project")
    data = client.bucket(bucket).blob("templates/welcome.html").download_as_bytes()
    assert data == b"<p>hello \xe2\x9c\x93</p>"


def test_pubsub_publish_pull_round_trip(pubsub_env: PubSubEmulator) -> None:
    queue = pubsub_env.create_queue()

    # Production-style client: only PUBSUB_EMULATOR_HOST points it at the emulator.
    publisher = pubsub_v1.PublisherClient()
    try:
        publisher.publish(queue.topic, b'{"to": "a@example.org"}', kind="email").result(30)
    finally:
        publisher.stop()

    [received] = pubsub_env.pull(queue.subscription)
    assert received.message.data == b'{"to": "a@example.org"}'
    assert received.message.attributes["kind"] == "email"
    assert pubsub_env.pull(queue.subscription, timeout_s=1) == []


def test_pubsub_dead_letter_after_max_delivery_attempts(pubsub_env: PubSubEmulator) -> None:
    queue = pubsub_env.create_queue(max_delivery_attempts=5)
    pubsub_env.publish(queue.topic, b"poison")

    attempts = []
    while received := pubsub_env.pull(queue.subscription, ack=False, timeout_s=3):
        attempts.append(received[0].delivery_attempt)
        pubsub_env.subscriber.modify_ack_deadline(  # nack: redeliver at once
            request={
                "subscription": queue.subscription,
                "ack_ids": [m.ack_id for m in received],
                "ack_deadline_seconds": 0,
            }
        )
    assert attempts == [1, 2, 3, 4, 5]
    [dead] = pubsub_env.pull(queue.dead_letter_subscription)
    assert dead.message.data == b"poison"


def test_pubsub_restart_on_same_port_leaves_no_process(pubsub_env: PubSubEmulator) -> None:
    port, group = pubsub_env.port, pubsub_env.pid_group
    assert group is not None
    assert len(group_members(group)) >= 2

    pubsub_env.stop()
    assert group_members(group) == []
    pubsub_env.start()

    assert pubsub_env.port == port
    topic = pubsub_env.create_topic()  # state is fresh but the emulator answers
    assert topic.startswith("projects/test-project/topics/")
