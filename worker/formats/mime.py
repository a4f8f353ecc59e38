"""Raw MIME: the header values the worker writes verbatim, and parsing raw messages.

A leaf of the formats: :mod:`worker.formats.request` parses raw messages with it while
checking a request, and :mod:`worker.formats.message` builds messages with it, so neither
needs the other to do its job.

Headers are stored as `VerbatimHeader` objects, which write themselves out unchanged under
any policy the caller serialises with. The email package would otherwise re-fold them on
output, turning long words into RFC 2047 encoded-words (corrupting ``X-SES-MESSAGE-TAGS`` and
``List-Unsubscribe`` URLs).
"""

from __future__ import annotations

import email
import re
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy, Policy
from typing import Self, cast

__all__ = ["MESSAGE_POLICY", "VerbatimHeader", "load_raw_message", "message_size"]

_PHYSICAL_LINE_RE = re.compile(r"\r\n|\r|\n")
_FOLD_POINT_RE = re.compile(r"(?<=\S)(?=[ \t]+\S)")


class VerbatimHeader(str):
    """A header value the email package writes out exactly as stored.

    The email policies call ``value.fold(policy=...)`` for any stored value
    with a ``name`` attribute instead of re-parsing it, which is the hook
    used here. With ``refold=True`` a single-line value is folded only at its
    existing whitespace, which unfolding undoes exactly; with ``refold=False``
    (raw message headers) the original line structure is kept as well.
    With ``refold=True`` the value must be one line: callers reject CR, LF
    and NUL first (`worker.formats.request` does).
    """

    name: str
    refold: bool

    def __new__(cls, name: str, value: str, refold: bool = True) -> Self:
        header = super().__new__(cls, value)
        header.name = name
        header.refold = refold
        return header

    def __getnewargs__(self) -> tuple[str, str, bool]:  # type: ignore[override]
        # copy.deepcopy (the session copies messages to drop Bcc) and pickle
        # rebuild str subclasses through __new__, which needs all three values.
        return (self.name, str(self), self.refold)

    def fold(self, *, policy: Policy) -> str:
        """Render ``Name: value`` plus line ending, as the policy protocol expects."""
        linesep = policy.linesep
        lines = _PHYSICAL_LINE_RE.split(str(self))
        if len(lines) > 1 or not self.refold or not policy.max_line_length:
            return f"{self.name}: {linesep.join(lines)}{linesep}"
        # Break only where whitespace already is, never right after "Name:",
        # so that unfolding (deleting the line breaks) restores the value.
        first, *rest = _FOLD_POINT_RE.split(lines[0])
        output: list[str] = []
        line = f"{self.name}: {first}"
        for chunk in rest:
            if len(line) + len(chunk) > policy.max_line_length:
                output.append(line)
                line = chunk
            else:
                line += chunk
        output.append(line)
        return linesep.join(output) + linesep


class _HeaderClasses(HeaderRegistry):
    """A header registry that makes each header class once, not on every lookup.

    The stock registry calls ``type()`` to create a fresh class each time a header is set or
    read; that was the largest single cost of building a message (about a quarter of it,
    measured with ``bench/run.py --profile``). Keyed by the header kind, so the cache stays
    a few entries however many custom header names requests use.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[object, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        kind = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(kind)
        if made is None:  # a race makes two equivalent classes; either may be kept
            made = self._made[kind] = type("_" + kind.__name__, (kind, self.base_class), {})
        return made

    def __reduce__(self) -> tuple[type[_HeaderClasses], tuple[()]]:
        # Made classes cannot be pickled; a copy (of a pickled message) makes its own.
        return (_HeaderClasses, ())


# One registry, so structured and raw messages share the classes it makes.
_HEADER_CLASSES = _HeaderClasses()
# email.policy.default with the header registry above.
MESSAGE_POLICY = EmailPolicy(header_factory=_HEADER_CLASSES)


class _RawPolicy(EmailPolicy):
    """Parse raw messages keeping every header exactly as it came.

    Nothing is re-parsed or re-folded when the message is written out, which
    keeps DKIM signatures and long URLs intact and also avoids the email
    package's header parser, whose cost grows quadratically with header size.
    The session reads addresses with `email.utils.getaddresses` on the header
    strings, which works on these values too.
    """

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        return name, VerbatimHeader(name, value, refold=False)


_RAW_POLICY = _RawPolicy(header_factory=_HEADER_CLASSES)


def load_raw_message(raw: bytes) -> EmailMessage:
    """Parse raw RFC 5322 bytes into an `EmailMessage` whose headers are all verbatim.

    Header values are `VerbatimHeader` strings (with their original folding),
    not parsed header objects; use ``email.policy.default.header_factory`` to
    parse one. Callers must bound header sizes first (see `worker.formats.request`).
    """
    # The policy's message factory is EmailMessage; typeshed cannot see that.
    return cast(EmailMessage, email.message_from_bytes(raw, policy=_RAW_POLICY))


def message_size(message: EmailMessage) -> int:
    """Size in bytes as sent over SMTP (CRLF line endings)."""
    return len(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
