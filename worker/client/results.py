"""A service reading its own results from its own subscription on the results topic.

Every result goes to the one results topic; each service has a subscription of its own on it,
``email-results-{service}`` (terraform's ``pubsub_names.results_subscription``, and
``email-worker setup``), filtered on the ``service_id`` attribute, that only the service's
own identities may read. :meth:`EmailClient.pull_results` reads it through
:func:`pull_results` here.

A result is the service's to handle, so it is acknowledged only when the caller says so
(:meth:`ReceivedResult.ack`): one the caller never acknowledges is delivered again once the
subscription's ack deadline (60 s) has passed. What the caller must never see is passed over
and acknowledged here: a message that is no result, and a result of another service, which a
subscription without the filter would deliver (the Pub/Sub emulator ignores filters).
"""

from __future__ import annotations

import logging
from typing import Any

from worker.client.pubsub_rpc import bounded, pull_once
from worker.formats.result import EmailResult

__all__ = ["ReceivedResult", "pull_results"]

logger = logging.getLogger(__name__)


class ReceivedResult:
    """A result pulled from a service's results subscription, not yet acknowledged."""

    def __init__(
        self,
        result: EmailResult,
        *,
        subscriber: Any,
        subscription: str,
        ack_id: str,
        rpc_timeout_s: float,
    ) -> None:
        self.result = result
        self.subscription = subscription
        self._subscriber = subscriber
        self._ack_id = ack_id
        self._rpc_timeout_s = rpc_timeout_s

    def ack(self) -> None:
        """Acknowledge the result: the subscription does not deliver it again."""
        _acknowledge(self._subscriber, self.subscription, [self._ack_id], self._rpc_timeout_s)

    def __repr__(self) -> str:
        return (
            f"ReceivedResult(request_id={self.result.request_id!r}, "
            f"service_id={self.result.service_id!r}, status={self.result.status!r})"
        )


def pull_results(
    subscriber: Any,
    subscription: str,
    service_id: str,
    *,
    max_results: int,
    timeout_s: float,
    rpc_timeout_s: float,
) -> list[ReceivedResult]:
    """The results of ``service_id`` waiting on ``subscription``, up to ``max_results``;
    ``[]`` when none came within ``timeout_s``. Anything else pulled is acknowledged and
    dropped, with a warning."""
    received = pull_once(subscriber, subscription, max_messages=max_results, timeout_s=timeout_s)
    taken: list[ReceivedResult] = []
    passed_over: list[str] = []
    for message in received:
        result = _own_result(message.message, service_id, subscription)
        if result is None:
            passed_over.append(message.ack_id)
            continue
        taken.append(
            ReceivedResult(
                result,
                subscriber=subscriber,
                subscription=subscription,
                ack_id=message.ack_id,
                rpc_timeout_s=rpc_timeout_s,
            )
        )
    if passed_over:
        _acknowledge(subscriber, subscription, passed_over, rpc_timeout_s)
    return taken


def _own_result(message: Any, service_id: str, subscription: str) -> EmailResult | None:
    """``message`` as a result of ``service_id``, or None (logged) if it is not one."""
    try:
        result = EmailResult.from_json_bytes(bytes(message.data))
    except (ValueError, TypeError, KeyError):
        logger.warning("ignoring a message on %s that is no result", subscription)
        return None
    if result.service_id != service_id:
        logger.warning(
            "ignoring a result of another service on %s, the results subscription of %s: "
            "its filter should not admit it",
            subscription,
            service_id,
        )
        return None
    return result


def _acknowledge(
    subscriber: Any, subscription: str, ack_ids: list[str], rpc_timeout_s: float
) -> None:
    subscriber.acknowledge(
        request={"subscription": subscription, "ack_ids": ack_ids}, **bounded(rpc_timeout_s)
    )
