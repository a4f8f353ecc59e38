"""Pub/Sub clients and calls with bounded waits, for the command line and the client API.

google-cloud-pubsub retries ``UNAVAILABLE`` for up to 60 seconds by default, even when a
``timeout`` is passed (that bounds each attempt only). Interactive tools want to say "Pub/Sub
is unreachable" after a few seconds instead, so every call here passes a :class:`Retry` whose
overall deadline is the given timeout.

The clients honour ``PUBSUB_EMULATOR_HOST`` as usual.
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import pubsub_v1

__all__ = [
    "bounded",
    "describe_error",
    "is_unreachable",
    "new_publisher",
    "new_subscriber",
    "pull_once",
]


def bounded(timeout_s: float) -> dict[str, Any]:
    """``retry``/``timeout`` keyword arguments that give up after ``timeout_s`` overall."""
    return {
        "retry": Retry(initial=0.2, maximum=2.0, multiplier=2.0, timeout=timeout_s),
        "timeout": timeout_s,
    }


def new_publisher(timeout_s: float) -> Any:
    """A publisher that sends at once and gives up on a publish after ``timeout_s``."""
    return pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.005, max_messages=100),
        publisher_options=pubsub_v1.types.PublisherOptions(
            retry=Retry(initial=0.2, maximum=2.0, multiplier=2.0, timeout=timeout_s),
            timeout=timeout_s,
        ),
    )


def new_subscriber() -> Any:
    return pubsub_v1.SubscriberClient()


def pull_once(
    subscriber: Any, subscription: str, *, max_messages: int, timeout_s: float
) -> list[Any]:
    """One synchronous pull: the ``ReceivedMessage`` objects, or ``[]`` if none came in time."""
    try:
        response = subscriber.pull(
            request={"subscription": subscription, "max_messages": max_messages},
            **bounded(timeout_s),
        )
    except gexc.DeadlineExceeded:  # a long poll that found nothing
        return []
    except gexc.RetryError as error:
        if isinstance(error.cause, gexc.DeadlineExceeded):
            return []
        raise
    return list(response.received_messages)


_UNREACHABLE = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.RetryError, TimeoutError)


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` means Pub/Sub did not answer (down, unreachable, too slow)."""
    return isinstance(error, _UNREACHABLE)


def describe_error(error: BaseException) -> str:
    """A one-line description of a Pub/Sub error, without a traceback."""
    if isinstance(error, gexc.RetryError) and error.cause is not None:
        error = error.cause
    if isinstance(error, gexc.GoogleAPICallError):
        detail = error.message or str(error)
    else:
        detail = str(error) or type(error).__name__
    return " ".join(detail.split())[:300]
