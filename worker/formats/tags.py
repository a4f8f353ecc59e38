"""The SES message tags the worker puts on every send, and how a request id fits in one.

SES copies a message's tags into every event it publishes about it (send, delivery, bounce,
complaint, ...), which is how the events reader finds the request an event belongs to. The
worker's tags all start with :data:`TAG_PREFIX`; requesters may not use names with that prefix
(``reserved_tag``), so an event's worker tags are always the worker's own.

SES tag values allow only ASCII letters, digits, ``_`` and ``-``, at most 255 of them, while a
request id is up to 128 printable Unicode characters. :func:`encode_request_id` maps every
valid request id to tag values and :func:`decode_request_id` maps them back, with no lookup:

* an id made only of ``A-Z a-z 0-9 _ -`` that does not start with :data:`ENCODED_MARKER` is its
  own tag value (Pub/Sub message ids, UUIDs, ``order-1842`` stay readable in SES's console);
* any other id becomes :data:`ENCODED_MARKER` followed by the unpadded base64url encoding of its
  UTF-8 bytes (base64url's alphabet is exactly SES's); ids whose encoding is longer than 255
  characters (non-ASCII ids over 188 bytes of UTF-8) continue in ``email_worker_request_id_2``
  and ``_3``, 255 characters each.

Reversible rather than a hash, so that the events reader can name the request without asking
the ledger, and so that events stay readable after the ledger has forgotten the request.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from worker.config.settings import SERVICE_ID_RE

__all__ = [
    "BATCH_TAG",
    "ENCODED_MARKER",
    "MAX_TAG_VALUE_LENGTH",
    "REQUEST_ID_TAG",
    "SERVICE_ID_TAG",
    "TAG_PREFIX",
    "WorkerTags",
    "decode_request_id",
    "encode_request_id",
    "is_reserved_tag_name",
    "read_worker_tags",
    "request_id_tag_names",
    "worker_tags",
]

#: Every tag the worker sets starts with this; requesters' tag names may not (``reserved_tag``).
TAG_PREFIX = "email_worker_"
SERVICE_ID_TAG = f"{TAG_PREFIX}service_id"
REQUEST_ID_TAG = f"{TAG_PREFIX}request_id"
#: Set per SES call by the sending library when a message goes out in several recipient
#: batches: the batch's position (from 0) in the result's ``message_ids``. Its name is
#: ``worker.sending.call_tags.BATCH_TAG`` too (a test keeps the two equal).
BATCH_TAG = f"{TAG_PREFIX}batch"
#: Starts a request id tag value that is base64url of the id's UTF-8 bytes.
ENCODED_MARKER = "b64_"
#: The longest SES tag value (SES: fewer than 256 characters).
MAX_TAG_VALUE_LENGTH = 255
# A request id is at most 128 characters of up to 4 UTF-8 bytes: 4 + 683 characters encoded.
_MAX_REQUEST_ID_TAGS = 3

_TAG_VALUE_RE = re.compile(r"[A-Za-z0-9_-]+")


def is_reserved_tag_name(name: str) -> bool:
    """Whether a requester may not use ``name``: it has the worker's prefix, compared without
    regard to case and with ``-`` read as ``_`` (``Email-Worker-x`` is refused too)."""
    return name.lower().replace("-", "_").startswith(TAG_PREFIX)


def request_id_tag_names() -> tuple[str, ...]:
    """The tag names a request id may take, in order: ``email_worker_request_id``, ``_2``, ..."""
    return (REQUEST_ID_TAG, *(f"{REQUEST_ID_TAG}_{n}" for n in range(2, _MAX_REQUEST_ID_TAGS + 1)))


def encode_request_id(request_id: str) -> tuple[str, ...]:
    """The tag values (one to three) that carry ``request_id``; see the module's docstring.

    Raises ``ValueError`` for an empty id or one that is not valid Unicode text (a lone
    surrogate), which the request format refuses anyway.
    """
    if not request_id:
        raise ValueError("a request id is not empty")
    if (
        _TAG_VALUE_RE.fullmatch(request_id)
        and not request_id.startswith(ENCODED_MARKER)
        and len(request_id) <= MAX_TAG_VALUE_LENGTH
    ):
        return (request_id,)
    try:
        data = request_id.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a request id is valid Unicode text") from None
    encoded = ENCODED_MARKER + base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
    values = tuple(
        encoded[start : start + MAX_TAG_VALUE_LENGTH]
        for start in range(0, len(encoded), MAX_TAG_VALUE_LENGTH)
    )
    if len(values) > _MAX_REQUEST_ID_TAGS:
        raise ValueError("a request id is at most 128 characters")
    return values


def decode_request_id(values: Iterable[str]) -> str:
    """The request id that :func:`encode_request_id` turned into ``values``.

    Raises ``ValueError`` for values it cannot have produced, so that every request id has
    exactly one encoding and an event with a damaged or foreign tag is not misattributed.
    """
    parts = tuple(values)
    if not parts or not all(_TAG_VALUE_RE.fullmatch(part) for part in parts):
        raise ValueError("request id tag values are letters, digits, '_' and '-'")
    joined = "".join(parts)
    if joined.startswith(ENCODED_MARKER):
        text = joined.removeprefix(ENCODED_MARKER)
        try:
            request_id = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError("an encoded request id tag is not base64url of UTF-8") from None
    else:
        request_id = joined
    if encode_request_id(request_id) != parts:
        raise ValueError("request id tag values are not in their one canonical form")
    return request_id


def worker_tags(
    *, service_id: str, request_id: str, batch: int | None = None
) -> tuple[tuple[str, str], ...]:
    """The worker's tags for one request (and, for one of several SES calls, its batch)."""
    values = encode_request_id(request_id)
    tags = [(SERVICE_ID_TAG, service_id), *zip(request_id_tag_names(), values, strict=False)]
    if batch is not None:
        tags.append((BATCH_TAG, str(batch)))
    return tuple(tags)


@dataclass(frozen=True)
class WorkerTags:
    """What the worker's tags on an SES event say."""

    service_id: str
    request_id: str
    batch: int | None = None


def read_worker_tags(tags: Mapping[str, str]) -> WorkerTags | None:
    """The worker's tags among an email's ``tags`` (name to value), or None if it has none.

    Raises ``ValueError`` when there are worker tags but they do not name a request: a service
    or request id missing or malformed, a batch that is not a small number.
    """
    ours = {name: value for name, value in tags.items() if name.startswith(TAG_PREFIX)}
    if not ours:
        return None
    service_id = ours.get(SERVICE_ID_TAG)
    if service_id is None or not SERVICE_ID_RE.fullmatch(service_id):
        raise ValueError("the service id tag is missing or not a service id")
    names = request_id_tag_names()
    present = [name for name in names if name in ours]
    if present != list(names[: len(present)]) or not present:
        raise ValueError("the request id tags are missing or out of sequence")
    request_id = decode_request_id(ours[name] for name in present)
    batch_value = ours.get(BATCH_TAG)
    batch: int | None = None
    if batch_value is not None:
        if not (batch_value.isascii() and batch_value.isdigit() and len(batch_value) <= 4):
            raise ValueError("the batch tag is not a batch number")
        batch = int(batch_value)
    return WorkerTags(service_id=service_id, request_id=request_id, batch=batch)
