"""What the ``dlq`` commands share: the dead-letter queue they open, the selection options
they take, and the confirmations and failures of a selection that matches nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import click

from worker.ops.commands import common
from worker.ops.commands.common import EXIT_USAGE, fail

if TYPE_CHECKING:
    from worker.config.settings import Settings
    from worker.formats.pubsub import Publish
    from worker.ops.dead_letter_queue import DeadLetterQueue
    from worker.ops.dead_letters import DeadLetter
    from worker.ops.selection import Selection


def make_publish(publisher: Any) -> Publish:
    """The publish function replay uses (a seam for tests that make publishes fail)."""

    def publish(topic: str, data: bytes, attributes: Any) -> Any:
        return publisher.publish(topic, data, **attributes)

    return publish


def selecting(*, by_message_id: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the selection options (MESSAGE_IDS when ``by_message_id``, then
    --service, --request-id and --code); it receives them as one ``selection``."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def selecting(
            *,
            service_id: str | None,
            request_id: str | None,
            error_code: str | None,
            message_ids: tuple[str, ...] = (),
            **options: Any,
        ) -> Any:
            from worker.ops.selection import Selection

            selection = Selection(frozenset(message_ids), service_id, request_id, error_code)
            return command(selection=selection, **options)

        for option in (
            click.option("--code", "error_code", metavar="CODE", help="With this error code."),
            click.option("--request-id", metavar="ID", help="Of this request id."),
            click.option("--service", "service_id", metavar="SERVICE", help="Of this service."),
        ):
            selecting = option(selecting)
        if by_message_id:
            selecting = click.argument("message_ids", nargs=-1)(selecting)
        return selecting

    return decorate


def replay_topic(settings: Settings) -> str:
    """Where ``dlq replay`` publishes: the replay topic, or with shared tenancy the one
    requests topic."""
    topics = settings.topics
    return topics.replay_topic if settings.services.per_service else topics.requests_topic


@contextmanager
def open_queue(settings: Settings, *, for_replay: bool = False) -> Iterator[DeadLetterQueue]:
    from worker.client.pubsub_rpc import new_publisher, new_subscriber
    from worker.ops.dead_letter_queue import DeadLetterQueue

    project = settings.require_project()
    subscription = f"projects/{project}/subscriptions/{settings.topics.dead_letter_subscription}"
    with common.pubsub_errors(
        f"reading {subscription}",
        not_found=f"subscription {subscription} does not exist (set "
        "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION, or create it with `email-worker setup`)",
    ):
        subscriber = new_subscriber()
        publisher = new_publisher(settings.process.publish_timeout_s) if for_replay else None
        try:
            queue = DeadLetterQueue(
                subscriber,
                subscription,
                publish=make_publish(publisher) if publisher is not None else None,
                # Per-service tenancy: operators may publish only to the replay topic, and
                # the worker sends a replay only if it is a request a service published.
                requests_topic=f"projects/{project}/topics/{replay_topic(settings)}",
                rpc_timeout_s=common.rpc_timeout_s(settings),
                publish_timeout_s=settings.process.publish_timeout_s,
            )
            queue.check()
            yield queue
        finally:
            if publisher is not None:
                publisher.stop()
            subscriber.close()


def confirm(question: str, *, yes: bool) -> None:
    """Ask ``question`` on stderr (abort on no), unless ``yes``."""
    if not yes:
        click.confirm(question, abort=True, err=True)


def fail_no_match(selection: Selection, queue: DeadLetterQueue) -> NoReturn:
    fail(f"no dead letter with {selection.describe()} in {queue.subscription}")


def require_selection(selection: Selection, all_: bool, verb: str) -> None:
    if all_ and selection.message_ids:
        fail("give message ids or --all, not both", EXIT_USAGE)
    if not all_ and selection.empty:
        fail(
            f"give the message ids to {verb}, or --service, --request-id or --code, or --all",
            EXIT_USAGE,
        )


def not_found(selection: Selection, found: list[DeadLetter]) -> list[str]:
    return sorted(selection.message_ids - {d.message_id for d in found})
