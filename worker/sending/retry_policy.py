"""The one retry policy for sending: which failures earn another attempt, and how they are spaced.

Two places retry a send, with this one policy and their own numbers: the worker's pipeline
around a request's send (EMAIL_WORKER_SEND_MAX_ATTEMPTS and its siblings; see
:mod:`worker.processing.send_request`), and
:meth:`worker.sending.ses_session.Session.send_email` around each recipient batch after the
first has been accepted (``LATER_BATCH_*``), where a retry of the whole message would send
the accepted batches twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from worker.sending.errors import EmailError, MaybeSentError

__all__ = ["RetryPolicy", "worth_retrying"]


def worth_retrying(error: BaseException) -> bool:
    """A transient failure that sent nothing. A partial send is not repeated (the batches
    already accepted would go twice), nor a send whose answer was lost (SES may have
    accepted it)."""
    return (
        isinstance(error, EmailError)
        and error.retryable
        and not error.sent_message_ids
        and not isinstance(error, MaybeSentError)
    )


class _GiveUpWhen(tenacity.stop.stop_base):
    """Stop retrying as soon as ``give_up()`` says so (a shutdown, an outage)."""

    def __init__(self, give_up: Callable[[], bool]) -> None:
        self._give_up = give_up

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self._give_up()


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, for how long, and the exponential backoff (with jitter) between."""

    max_attempts: int
    #: No new attempt starts after this long.
    deadline_s: float
    initial_backoff_s: float
    max_backoff_s: float

    def retrying(
        self,
        *,
        sleep: Callable[[float], None],
        give_up: Callable[[], bool] | None = None,
        before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
    ) -> tenacity.Retrying:
        """A tenacity ``Retrying`` for the failures :func:`worth_retrying`, which re-raises
        the last one. It keeps each call's state per thread: threads may share one."""
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(
            self.max_attempts
        ) | tenacity.stop_before_delay(self.deadline_s)
        if give_up is not None:
            stop = stop | _GiveUpWhen(give_up)
        return tenacity.Retrying(
            stop=stop,
            wait=tenacity.wait_exponential_jitter(
                multiplier=self.initial_backoff_s, max=self.max_backoff_s
            ),
            retry=tenacity.retry_if_exception(worth_retrying),
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
