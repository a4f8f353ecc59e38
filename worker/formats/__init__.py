"""The formats: what travels between requesters, the worker and SES, and nothing else.

The layer owns the v1 request (parsing and every check, :func:`parse_request`), the v1 result
(:class:`EmailResult`) and the error codes both speak (:class:`ErrorCode`), the v1 event
(:class:`EmailEvent`), the SES message tags the worker puts on every send and reads back from
SES's events (:func:`worker_tags`, :func:`read_worker_tags`), the email addresses inside them,
the MIME message a request becomes (:func:`build_message`), the Pub/Sub attribute names of
dead letters and replays, and the JSON Schemas that ship in ``worker/formats/schemas``. It is
pure data and checks: it imports nothing else of the worker, does no I/O, and raises
:class:`RequestRejected` for anything a requester got wrong.
"""

from __future__ import annotations

from worker.formats.addresses import Mailbox, parse_mailbox
from worker.formats.error_codes import ErrorCode, ResultStatus
from worker.formats.event import EmailEvent, EventType
from worker.formats.message import build_message, resolve_sender
from worker.formats.pubsub import DEAD_LETTER_ATTRIBUTES, REPLAY_COUNT_ATTRIBUTE, Publish
from worker.formats.rejection import RequestRejected
from worker.formats.request import EmailRequest, parse_request
from worker.formats.result import EmailResult, ResultError
from worker.formats.tags import WorkerTags, read_worker_tags, worker_tags

__all__ = [
    "DEAD_LETTER_ATTRIBUTES",
    "REPLAY_COUNT_ATTRIBUTE",
    "EmailEvent",
    "EmailRequest",
    "EmailResult",
    "ErrorCode",
    "EventType",
    "Mailbox",
    "Publish",
    "RequestRejected",
    "ResultError",
    "ResultStatus",
    "WorkerTags",
    "build_message",
    "parse_mailbox",
    "parse_request",
    "read_worker_tags",
    "resolve_sender",
    "worker_tags",
]
