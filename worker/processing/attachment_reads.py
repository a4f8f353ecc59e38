"""Attachments by reference, read for the send step: pinned, bounded and retried.

:func:`read_attachments` turns a request's ``gs://`` attachments into inline ones. It asks
Cloud Storage for each object's current generation and size, has the ledger pin those
generations on the request's claim (the first delivery's pins win, so a redelivery or a replay
sends the bytes the first one saw), refuses a request whose objects changed or are too big
for SES, and reads each pinned generation. Every storage call is retried by the send's retry
policy (``Deps.send_retrying``). Which objects may be read was decided before
(:func:`worker.processing.admission.forbidden_attachment`).

The bytes read are counted against the process's attachment memory budget
(``Deps.attachment_budget``) for as long as the caller keeps them, with the copies the send
makes of them (:func:`held_in_memory`): :func:`read_attachments` is a context manager, and a
send that would exceed the budget waits for others to finish.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from worker.formats.request import Attachment, AttachmentRef, EmailRequest
from worker.processing.delivery import Deps
from worker.processing.held_claims import ClaimLost, HeldClaim
from worker.sending.attachment_store import ObjectVersion
from worker.sending.envelope import MAX_RAW_MESSAGE_BYTES
from worker.sending.errors import AttachmentChangedError, MessageTooLargeError, ThrottledError

__all__ = [
    "checked_size",
    "described_attachments",
    "encoded_size",
    "held_in_memory",
    "read_attachments",
]


def encoded_size(size: int) -> int:
    """The bytes ``size`` bytes take in a message: base64, in lines of 76 plus CRLF."""
    encoded = -(-size // 3) * 4
    return encoded + -(-encoded // 76) * 2


def held_in_memory(size: int) -> int:
    """The most memory a send of ``size`` bytes of attachments holds at once: the bytes, and
    five times their base64 (the message, the copy of it taken for SES, and SES's request,
    which carries that copy in base64 again, twice while it is made). Measured with a 10 MB
    attachment: 74 MiB at the peak, this says 78."""
    return size + 5 * encoded_size(size)


@contextmanager
def read_attachments(
    request: EmailRequest, deps: Deps, held: HeldClaim | None
) -> Iterator[EmailRequest]:
    """``request`` with its ``gs://`` attachments read, at their pinned generations.

    Raises the storage errors (``attachment_not_found``, ``attachment_changed``, transient
    ones once retries ran out), `MessageTooLargeError` before reading anything too big,
    `ThrottledError` when the memory budget stays full for longer than the send deadline,
    `ClaimLost`, and `worker.ledger.LedgerUnavailable`.
    """
    refs = _refs(request)
    versions = described_attachments(request, deps)
    generations = _pinned(tuple(v.generation for v in versions), held)
    for (index, _), version, pinned in zip(refs, versions, generations, strict=True):
        if version.generation != pinned:
            raise AttachmentChangedError(
                f"{_label(index)}: the object changed since the request was first claimed"
            )
    budgeted = held_in_memory(checked_size(request, versions))
    if not deps.attachment_budget.acquire(budgeted, timeout_s=deps.settings.sending.deadline_s):
        raise ThrottledError("the worker's attachment memory budget stayed full")
    try:
        contents = {
            index: deps.send_retrying(
                deps.attachment_store.read,
                ref.location.bucket,
                ref.location.name,
                generation,
                _label(index),
            )
            for (index, ref), generation in zip(refs, generations, strict=True)
        }
        # Handed over, not kept here: the caller can let go of the bytes once they are in
        # the message, before the send.
        yield replace(request, attachments=_inlined(request, contents))
    finally:
        deps.attachment_budget.release(budgeted)


def _pinned(generations: tuple[int, ...], held: HeldClaim | None) -> tuple[int, ...]:
    """The generations to send: the ledger's pins for the claim (or ``generations`` without
    a ledger)."""
    if held is None:
        return generations
    pinned = held.ledger.pin_attachments(held.key, owner=held.owner, generations=generations)
    if pinned is None:
        raise ClaimLost
    if len(pinned) != len(generations):  # the same content hash names the same attachments
        raise AttachmentChangedError("the pinned attachments do not match the request")
    return pinned


def described_attachments(request: EmailRequest, deps: Deps) -> list[ObjectVersion]:
    """Each ``gs://`` attachment's current generation and size, in the request's order
    (storage errors raised once the send's retries ran out)."""
    return [
        deps.send_retrying(
            deps.attachment_store.describe, a.location.bucket, a.location.name, _label(i)
        )
        for i, a in _refs(request)
    ]


def _refs(request: EmailRequest) -> list[tuple[int, AttachmentRef]]:
    return [(i, a) for i, a in enumerate(request.attachments) if isinstance(a, AttachmentRef)]


def checked_size(request: EmailRequest, versions: list[ObjectVersion]) -> int:
    """The bytes to read; `MessageTooLargeError` if, encoded, they alone exceed SES's limit
    (the whole message is measured again before the SES call)."""
    total = sum(v.size for v in versions)
    inline = sum(len(a.content) for a in request.attachments if isinstance(a, Attachment))
    encoded = encoded_size(total) + encoded_size(inline)
    if encoded > MAX_RAW_MESSAGE_BYTES:
        raise MessageTooLargeError(
            f"the attachments take {encoded} bytes encoded, more than the limit of "
            f"{MAX_RAW_MESSAGE_BYTES} bytes"
        )
    return total


def _inlined(
    request: EmailRequest, contents: dict[int, bytes]
) -> tuple[Attachment | AttachmentRef, ...]:
    return tuple(
        Attachment(filename=a.filename, content_type=a.content_type, content=contents.pop(i))
        if isinstance(a, AttachmentRef)
        else a
        for i, a in enumerate(request.attachments)
    )


def _label(index: int) -> str:
    return f"attachments[{index}]"
