"""A stand-in for Pub/Sub push delivery, driving ``email-worker serve`` from emulator pull
subscriptions.

What it reproduces of Pub/Sub's push delivery (cloud.google.com/pubsub/docs/push and
/handling-failures):

* each message is POSTed to the endpoint as a wrapped push envelope (``message`` with data,
  attributes and messageId, ``subscription``, ``deliveryAttempt``), with at most
  ``concurrency`` requests outstanding;
* a 2xx answer acks the message; any other answer, or none within the subscription's ack
  deadline, is a nack;
* after a nack the message is not delivered again before the retry policy's backoff:
  exponential per message, ``min(min_backoff_s * 2**(n - 1), max_backoff_s)`` after its n-th
  failed delivery;
* after ``max_delivery_attempts`` the message goes to the dead-letter topic.

The counting and the dead-lettering are the emulator's own: the stand-in pulls from ordinary
pull subscriptions with a dead-letter policy, whose ``delivery_attempt`` the emulator fills in
and whose last failed delivery it forwards to the dead-letter topic (when it would deliver
the message again: while the stand-in is pulling). A nack with backoff is
the message's ack deadline set to the backoff (the emulator delivers it again once that lease
runs out, counting an attempt). Backoffs are whole seconds, as
the subscription's retry policy and the worker's ``EMAIL_WORKER_RETRY_*_BACKOFF_S`` are.

Not reproduced: push authentication (run ``serve`` with ``EMAIL_WORKER_PUSH_AUTH=off``) and
Pub/Sub's push flow control, which slows pushes to an endpoint that keeps failing (here
``concurrency`` is a fixed cap).

Why not the emulator's own push subscriptions: after a few non-2xx answers the emulator stops
pushing to the endpoint for over four minutes, whatever the retry policy says, and it sends no
``deliveryAttempt`` (docs/push.md), so the worker cannot tell a last attempt; a test of how
the worker's 503s and the subscription's backoff ride out an outage cannot run on it.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.api_core.exceptions import GoogleAPICallError

from tests.support.pubsub_emulator import PubSubEmulator
from tests.support.push import envelope

__all__ = ["PushDriver"]


class PushDriver:
    """Pushes the messages of ``subscriptions`` to ``endpoint`` until stopped (a context
    manager). ``statuses`` counts the answers (``0``: no answer in time); ``attempts`` holds
    each message id's delivery attempts so far."""

    def __init__(
        self,
        emulator: PubSubEmulator,
        subscriptions: Sequence[str],
        endpoint: str,
        *,
        min_backoff_s: int,
        max_backoff_s: int,
        ack_deadline_s: float,
        concurrency: int = 64,
    ) -> None:
        self._subscriber = emulator.subscriber
        self._subscriptions = list(subscriptions)
        self._endpoint = endpoint
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._ack_deadline_s = ack_deadline_s
        self._slots = threading.BoundedSemaphore(concurrency)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="push")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.attempts: dict[str, int] = {}
        self._pullers = [
            threading.Thread(target=self._pull_loop, args=(s,), name="push-pull", daemon=True)
            for s in self._subscriptions
        ]

    def __enter__(self) -> PushDriver:
        for puller in self._pullers:
            puller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for puller in self._pullers:
            puller.join(timeout=30)
        self._pool.shutdown(wait=True)

    def backoff_s(self, failed_attempt: int) -> int:
        """The wait after a message's ``failed_attempt``-th delivery failed."""
        doubled: int = self._min_backoff_s * 2 ** (failed_attempt - 1)
        return min(doubled, self._max_backoff_s)

    def _pull_loop(self, subscription: str) -> None:
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            try:
                response = self._subscriber.pull(
                    request={"subscription": subscription, "max_messages": 1}, timeout=2.0
                )
                received = list(response.received_messages)
            except GoogleAPICallError:  # nothing to pull (DeadlineExceeded), or a hiccup
                received = []
            if not received:
                self._slots.release()
                continue
            self._pool.submit(self._push, subscription, received[0])

    def _push(self, subscription: str, received: Any) -> None:
        try:
            message = received.message
            attempt = received.delivery_attempt or 1
            with self._lock:
                self.attempts[message.message_id] = attempt
            document = envelope(
                message.data,
                message_id=message.message_id,
                attributes=dict(message.attributes),
                delivery_attempt=attempt,
                subscription=subscription,
            )
            status = self._post(document)
            with self._lock:
                self.statuses[status] += 1
            if 200 <= status < 300:
                self._subscriber.acknowledge(
                    request={"subscription": subscription, "ack_ids": [received.ack_id]}
                )
            else:  # a nack: not delivered again before the backoff
                self._subscriber.modify_ack_deadline(
                    request={
                        "subscription": subscription,
                        "ack_ids": [received.ack_id],
                        "ack_deadline_seconds": self.backoff_s(attempt),
                    }
                )
        finally:
            self._slots.release()

    def _post(self, document: dict[str, Any]) -> int:
        """POST one envelope; the answer's status, or 0 when none came within the deadline."""
        push = urllib.request.Request(
            self._endpoint,
            data=json.dumps(document).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(push, timeout=self._ack_deadline_s) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:  # refused, reset, timed out: no answer
            return 0
