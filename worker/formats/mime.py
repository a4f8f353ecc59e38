"""Raw MIME: the header values the worker writes verbatim, and parsing raw messages.

A leaf of the formats: :mod:`worker.formats.request` parses raw messages with it while
checking a request, and :mod:`worker.formats.message` builds messages with it, so neither
needs the other to do its job.

A raw message is parsed to be checked, never to be written out again: `load_raw_message`
returns a `RawMessage`, whose `RawMessage.as_bytes` writes each header field it was parsed
with exactly as it came, the header fields set since then as the policy folds them, and after
them the rest of the input (blank line and body) byte for byte. The email package's
generator would otherwise rebuild the body from the parsed tree, dropping empty MIME parts,
adding blank lines and breaking DKIM signatures over the body. A structured message is held
the same way, as a `WrittenMessage`: header fields and the body the worker wrote for it.

Headers are stored as `VerbatimHeader` objects, which write themselves out unchanged under
any policy the caller serialises with. The email package would otherwise re-fold them on
output, turning long words into RFC 2047 encoded-words (corrupting ``X-SES-MESSAGE-TAGS`` and
``List-Unsubscribe`` URLs).
"""

from __future__ import annotations

import email
import email.errors
import re
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy, Policy
from typing import Self, cast

__all__ = [
    "MESSAGE_POLICY",
    "MalformedHeaderLineDefect",
    "RawMessage",
    "VerbatimHeader",
    "WrittenMessage",
    "load_raw_message",
    "message_size",
    "written_message",
]

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
# The same for the wire: lines end in CRLF.
_WIRE = MESSAGE_POLICY.clone(linesep="\r\n")


class _SourceHeader(VerbatimHeader):
    """A header of a raw message, with the exact text of its field as it came.

    `source` is the whole field, name, continuation lines and line endings included, in the
    parser's ASCII-with-surrogateescape decoding of the bytes.
    """

    source: str

    def __new__(cls, name: str, value: str, refold: bool = False, source: str = "") -> Self:
        header = super().__new__(cls, name, value, refold)
        header.source = source
        return header

    def __getnewargs__(self) -> tuple[str, str, bool, str]:  # type: ignore[override]
        return (self.name, str(self), self.refold, self.source)


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
        return name, _SourceHeader(name, value, refold=False, source="".join(sourcelines))


_RAW_POLICY = _RawPolicy(header_factory=_HEADER_CLASSES)


class MalformedHeaderLineDefect(email.errors.MessageDefect):
    """A raw message's header block has a line the parser skipped (such as one with no name)."""


class RawMessage(EmailMessage):
    """A parsed raw message that writes itself out as it came, changed headers aside.

    `as_bytes` writes the header fields in their current order: those the message was parsed
    with exactly as they came, those set since as the policy folds them. Then it writes
    `tail`, the original input after the header fields (the blank line and the body, or
    nothing for a message without a body), byte for byte. Lines end in CRLF; an LF policy
    (the default one of raw messages) turns them into LF. A leading mbox ``From `` line is
    not written. The MIME tree is for reading only: changing a part's payload does not
    change what is written.
    """

    tail: bytes = b""

    def as_bytes(self, unixfrom: bool = False, policy: Policy | None = None) -> bytes:
        policy = policy or self.policy
        wire_policy: Policy | None = None  # made only for a header set since parsing
        fields: list[bytes] = []
        for name, value in self._headers:  # type: ignore[attr-defined]
            if isinstance(value, _SourceHeader):
                field = value.source.encode("ascii", "surrogateescape")
            else:
                if wire_policy is None:
                    wire_policy = policy.clone(linesep="\r\n")
                field = wire_policy.fold_binary(name, value)
            if fields and not fields[-1].endswith(b"\r\n"):
                # The input's last line had no line ending and a header now follows it.
                fields[-1] += b"\r\n"
            fields.append(field)
        if self.tail and fields and not fields[-1].endswith(b"\r\n"):
            fields[-1] += b"\r\n"
        data = b"".join(fields) + self.tail
        if policy.linesep != "\r\n":
            data = data.replace(b"\r\n", policy.linesep.encode("ascii"))
        return data

    def __bytes__(self) -> bytes:
        return self.as_bytes()


class WrittenMessage(RawMessage):
    """A message the worker wrote itself (`worker.formats.message`), held as it will be sent.

    Its header fields are `VerbatimHeader` values, each with the exact text it is written as,
    so that the session reads and changes them as in any message (From, the recipients, the
    removal of Bcc, the tags header); `tail` is the blank line and the MIME body, in CRLF
    lines of at most 78 characters. `as_bytes` and `as_string` write exactly that (with the
    policy's line endings). No MIME tree is built: parse the bytes to read the parts.
    """

    def as_string(
        self, unixfrom: bool = False, maxheaderlen: int | None = None, policy: Policy | None = None
    ) -> str:
        # 7-bit by construction: non-ASCII text is encoded before it is written.
        return self.as_bytes(policy=policy).decode("ascii")

    def __str__(self) -> str:
        return self.as_string()


def written_message(fields: list[VerbatimHeader], tail: bytes) -> WrittenMessage:
    """A `WrittenMessage` of the header `fields` (folded as `VerbatimHeader.fold` does for
    SMTP), then `tail` (CRLF lines, starting with the blank line that ends the header)."""
    message = WrittenMessage(policy=MESSAGE_POLICY)
    message._headers = [  # type: ignore[attr-defined]
        (
            field.name,
            _SourceHeader(field.name, str(field), refold=True, source=field.fold(policy=_WIRE)),
        )
        for field in fields
    ]
    message.tail = tail
    return message


def normalise_line_endings(raw: bytes) -> bytes:
    """`raw` with every line ending (CRLF, bare LF, bare CR) as CRLF, as SMTP needs."""
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def load_raw_message(raw: bytes) -> RawMessage:
    """Parse raw RFC 5322 bytes into a `RawMessage` whose headers are all verbatim.

    Line endings are made CRLF first. Header values are `VerbatimHeader` strings (with their
    original folding), not parsed header objects; use ``email.policy.default.header_factory``
    to parse one. Callers must bound header sizes first (see `worker.formats.request`) and
    check the parser's defects: the bytes after the parsed header fields are kept as the
    message's `RawMessage.tail` whatever they are. When the parser skipped a malformed header
    line, so that its header fields are not the input's header lines, the message gets a
    `MalformedHeaderLineDefect` (and is not fit to be sent).
    """
    data = normalise_line_endings(raw)
    # The policy's message factory is EmailMessage; typeshed cannot see that.
    parsed = cast(EmailMessage, email.message_from_bytes(data, policy=_RAW_POLICY))
    message = RawMessage(policy=_RAW_POLICY)
    message.__dict__.update(parsed.__dict__)
    start = 0
    if message.get_unixfrom() is not None:
        # An mbox separator line, not part of the message: dropped.
        end = data.find(b"\r\n")
        start = len(data) if end < 0 else end + 2
    head = "".join(
        value.source if isinstance(value, _SourceHeader) else "\0"
        for _, value in message._headers  # type: ignore[attr-defined]
    ).encode("ascii", "surrogateescape")
    if data[start : start + len(head)] != head:
        message.defects.append(MalformedHeaderLineDefect())
    message.tail = data[start + len(head) :]
    if message.tail[:2] not in (b"", b"\r\n") and not any(
        isinstance(defect, email.errors.MissingHeaderBodySeparatorDefect)
        for defect in message.defects
    ):
        # The parser takes an mbox-like "From " line ending the header block for the
        # first line of the body, with no blank line before it; other such lines it flags.
        message.defects.append(email.errors.MissingHeaderBodySeparatorDefect())
    return message


def message_size(message: EmailMessage) -> int:
    """Size in bytes as sent over SMTP (CRLF line endings)."""
    return len(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
