"""What the console reads and acts on: the request ledger and the dead-letter subscription.

Opened once when the console starts, shared by every page (the ledger and the Pub/Sub
clients are thread-safe). Dead letters are read and acted on with the operators' own
:class:`~worker.ops.dead_letter_queue.DeadLetterQueue`, so the console follows the same rules
as ``email-worker dlq``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.config.settings import Settings
from worker.ledger import Ledger, LedgerKey, LedgerRecord, RecipientStatus
from worker.ops.commands.common import rpc_timeout_s
from worker.ops.commands.dlq import make_publish
from worker.ops.dead_letter_queue import DeadLetterQueue

__all__ = ["Sources", "open_sources", "replay_topic"]


def replay_topic(settings: Settings) -> str:
    """Where replays go: the replay topic, or with shared tenancy the one requests topic
    (as ``email-worker dlq replay``)."""
    topics = settings.topics
    return topics.replay_topic if settings.services.per_service else topics.requests_topic


@dataclass
class Sources:
    """The console's ledger and Pub/Sub clients (``publisher`` for replays)."""

    settings: Settings
    ledger: Ledger
    subscriber: Any
    publisher: Any

    @property
    def project(self) -> str:
        return self.settings.require_project()

    @property
    def subscription(self) -> str:
        name = self.settings.topics.dead_letter_subscription
        return f"projects/{self.project}/subscriptions/{name}"

    @property
    def requests_topic(self) -> str:
        return f"projects/{self.project}/topics/{replay_topic(self.settings)}"

    def lookup(self, key: LedgerKey) -> tuple[LedgerRecord | None, list[RecipientStatus]]:
        """The ledger's record of one request and its recipients' latest statuses."""
        return self.ledger.get(key), self.ledger.statuses(key)

    def queue(self) -> DeadLetterQueue:
        return DeadLetterQueue(
            self.subscriber,
            self.subscription,
            publish=make_publish(self.publisher),
            requests_topic=self.requests_topic,
            rpc_timeout_s=rpc_timeout_s(self.settings),
            publish_timeout_s=self.settings.process.publish_timeout_s,
            # The console reads while a person waits: an empty pull ends a scan sooner.
            pull_wait_s=1.0,
        )

    def close(self) -> None:
        self.publisher.stop()
        self.subscriber.close()
        self.ledger.close()


def open_sources(settings: Settings, ledger: Ledger) -> Sources:
    """Pub/Sub clients beside the (already opened) ``ledger``."""
    from worker.client.pubsub_rpc import new_publisher, new_subscriber

    return Sources(
        settings, ledger, new_subscriber(), new_publisher(settings.process.publish_timeout_s)
    )
