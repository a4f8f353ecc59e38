"""SES message tags on a send: the message's own (its ``X-SES-MESSAGE-TAGS`` header) and the
batch tag the session adds when a message goes out in several SES calls.

SES takes a raw message's tags from that header, unless the call passes ``EmailTags``: then
it uses those alone and ignores the header. So a call that needs a tag of its own (the batch
index) must pass the header's tags with it.
"""

from __future__ import annotations

import re
from email.message import Message

from worker.sending.errors import InvalidMessageError

__all__ = ["BATCH_TAG", "TAGS_HEADER", "batch_tags", "header_tags"]

#: The header SES reads a raw message's tags from (and removes before delivery).
TAGS_HEADER = "X-SES-MESSAGE-TAGS"
#: The position (from 0) of a recipient batch among the SES calls of one message, set only
#: when there are several. It has the worker's reserved prefix (worker.formats.tags).
BATCH_TAG = "email_worker_batch"

_TAG_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


def header_tags(message: Message) -> tuple[tuple[str, str], ...]:
    """The ``name=value`` pairs of the message's tags header(s), in order.

    Raises :class:`InvalidMessageError` for a pair SES would refuse too.
    """
    pairs: list[tuple[str, str]] = []
    for header in message.get_all(TAGS_HEADER, []):
        for item in str(header).split(","):
            name, sep, value = item.strip().partition("=")
            name, value = name.strip(), value.strip()
            if not sep or not _TAG_RE.fullmatch(name) or not _TAG_RE.fullmatch(value):
                raise InvalidMessageError(
                    f"the {TAGS_HEADER} header is not a list of name=value tags of ASCII "
                    "letters, digits, '_' and '-'"
                )
            pairs.append((name, value))
    return tuple(pairs)


def batch_tags(tags: tuple[tuple[str, str], ...], batch: int) -> list[dict[str, str]]:
    """``EmailTags`` for one of several SES calls: ``tags`` and the batch's index (replacing a
    batch tag the message may carry itself)."""
    kept = [{"Name": name, "Value": value} for name, value in tags if name != BATCH_TAG]
    return [*kept, {"Name": BATCH_TAG, "Value": str(batch)}]
