"""A recording :class:`~worker.sending.ses_session.BaseSession` for tests of code that sends email.

:class:`RecordingSession` sends nothing: it keeps every message given to ``send_email`` and
answers with the ids, or raises the error, that its behaviour gives for that call.

Example::

    from worker.sending.errors import ThrottledError
    from worker.sending.testing import RecordingSession

    session = RecordingSession()
    session.send_email(message)  # ["test-1"]

    def throttled_once(call: int) -> list[str]:
        if call == 1:
            raise ThrottledError("slow down")
        return [f"ses-{call}"]

    flaky = RecordingSession(throttled_once)
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage

from worker.sending.service_config import ServiceConfig
from worker.sending.ses_session import BaseSession

__all__ = ["Behaviour", "RecordingSession", "fresh_id"]

#: What a :class:`RecordingSession` does on its ``call``-th send (counted from 1): return the
#: message ids, or raise an error such as an :class:`~worker.sending.errors.EmailError`.
Behaviour = Callable[[int], list[str]]


def fresh_id(call: int) -> list[str]:
    """The default behaviour: one id per call, ``test-1``, ``test-2``, ..."""
    return [f"test-{call}"]


class RecordingSession(BaseSession):
    """Records every message it is asked to send; answers as ``behaviour`` says.

    Args:
        behaviour: Called with the call number (1 for the first send) after the message is
            recorded; what it returns is returned, what it raises is raised. Defaults to
            :func:`fresh_id`.
        service_config: The configuration document the session claims to be built from.
    """

    def __init__(
        self,
        behaviour: Behaviour = fresh_id,
        *,
        service_config: ServiceConfig | None = None,
    ) -> None:
        self.behaviour = behaviour
        self.service_config = service_config
        #: Every message given to :meth:`send_email`, in order, including those that failed.
        self.messages: list[EmailMessage] = []

    @property
    def calls(self) -> int:
        """How many times :meth:`send_email` was called."""
        return len(self.messages)

    @property
    def last_message(self) -> EmailMessage | None:
        """The most recent message given to :meth:`send_email`, if any."""
        return self.messages[-1] if self.messages else None

    def send_email(self, message: EmailMessage) -> list[str]:
        self.messages.append(message)
        return list(self.behaviour(self.calls))

    def __repr__(self) -> str:
        return f"RecordingSession(calls={self.calls}, service_config={self.service_config!r})"
