"""Awaiting one request's result on a private subscription: :class:`PendingResult`.

A result is taken only when both its request id and its service are the awaited ones, and only
a final outcome (not ``scheduled`` or a cancel's answer); see `worker.client.email_client`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from worker.formats.error_codes import ResultStatus
from worker.formats.result import EmailResult

__all__ = ["PendingResult", "ResultTimeout"]

logger = logging.getLogger(__name__)


class ResultTimeout(TimeoutError):
    """No result arrived in time. The request may still be processed later."""

    def __init__(self, request_id: str, timeout_s: float) -> None:
        super().__init__(f"no result for request {request_id} within {timeout_s:g} s")
        self.request_id = request_id
        self.timeout_s = timeout_s


#: Results that are not a request's final outcome (docs/formats.md, "Scheduled sending").
_NOT_FINAL = frozenset({ResultStatus.SCHEDULED, ResultStatus.CANCEL_REFUSED})


class PendingResult:
    """A result being awaited; see `EmailClient.expect_result`."""

    def __init__(
        self,
        subscriber: Any,
        subscription: str,
        request_id: str,
        rpc_timeout_s: float,
        service_id: str | None = None,
    ) -> None:
        self.subscription = subscription
        self.request_id = request_id
        #: The service whose result is awaited; None: any (the worker's default service).
        self.service_id = service_id
        self._subscriber = subscriber
        self._rpc_timeout_s = rpc_timeout_s

    def wait(self, timeout_s: float) -> EmailResult:
        """The request's result; `ResultTimeout` if none arrives within ``timeout_s``."""
        from worker.client.pubsub_rpc import bounded, pull_once

        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResultTimeout(self.request_id, timeout_s)
            received = pull_once(
                self._subscriber,
                self.subscription,
                max_messages=10,
                timeout_s=max(0.5, min(remaining, self._rpc_timeout_s)),
            )
            if not received:
                continue
            # The subscription is private; acknowledge everything, including results for
            # other requests that a filter-less emulator delivers anyway.
            self._subscriber.acknowledge(
                request={
                    "subscription": self.subscription,
                    "ack_ids": [m.ack_id for m in received],
                },
                **bounded(self._rpc_timeout_s),
            )
            for message in received:
                result = self._awaited(message.message)
                if result is not None:
                    return result

    def _awaited(self, message: Any) -> EmailResult | None:
        """``message`` as a result if it is the awaited one: this request of this service."""
        if message.attributes.get("request_id") != self.request_id:
            return None
        try:
            result = EmailResult.from_json_bytes(bytes(message.data))
        except (ValueError, TypeError, KeyError):
            logger.warning("ignoring a malformed result for request %s", self.request_id)
            return None
        if result.request_id != self.request_id:
            return None
        if self.service_id is not None and result.service_id != self.service_id:
            logger.warning(
                "ignoring a result for request %s of another service (%s)",
                self.request_id,
                result.service_id,
            )
            return None
        if result.status in _NOT_FINAL:
            return None  # scheduled for later, or a cancel's answer: the outcome follows
        return result
