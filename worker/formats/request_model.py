"""The v1 request as the worker holds it: its limits and its dataclasses.

:func:`worker.formats.request.parse_request` builds these; everything after the transport reads
them. Reprs and :func:`request_summary_for_logs` stay free of addresses, bodies and names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.config.gcs_uri import GcsLocation
from worker.formats.addresses import Mailbox

REQUEST_VERSION = 1

MAX_REQUEST_ID_LENGTH = 128
# The session sends to SES in batches of 50 recipients; this cap bounds how
# many SES calls (and how much quota) one request can use.
MAX_RECIPIENTS = 1000
MAX_REPLY_TO = 10
MAX_SUBJECT_LENGTH = 998
MAX_HEADERS = 50
MAX_HEADER_NAME_LENGTH = 76
# Short enough that "Name: " plus one unbreakable value stays under the
# 998-character line limit of RFC 5322, so ASCII values can be written as is.
MAX_HEADER_VALUE_LENGTH = 900
MAX_ATTACHMENTS = 100
MAX_FILENAME_LENGTH = 255
MAX_TAGS = 50
MAX_TAG_LENGTH = 256

RESERVED_HEADER_NAMES: frozenset[str] = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "sender",
        "reply-to",
        "message-id",
        "return-path",
        "mime-version",
        "date",
        # The email package parses these two as structured date headers,
        # which would turn a harmless custom value into a build failure.
        "orig-date",
    }
)
RESERVED_HEADER_PREFIXES: tuple[str, ...] = (
    "content-",
    "dkim-",
    # SES acts on X-SES-* headers (configuration set, source ARN, tags), so a
    # requester must not be able to set them.
    "x-ses-",
    # Resent-* are address and date headers with special meaning to SES and MTAs.
    "resent-",
)


@dataclass(frozen=True, repr=False)
class Attachment:
    """A decoded attachment. Its content and filename stay out of `repr`."""

    filename: str
    content_type: str
    content: bytes

    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]

    @property
    def subtype(self) -> str:
        return self.content_type.partition("/")[2]

    def __repr__(self) -> str:
        return f"Attachment(content_type={self.content_type!r}, size={len(self.content)})"


@dataclass(frozen=True, repr=False)
class AttachmentRef:
    """An attachment named by a ``gs://`` object, read at send time; names stay out of `repr`."""

    filename: str
    content_type: str
    location: GcsLocation

    def __repr__(self) -> str:
        return f"AttachmentRef(content_type={self.content_type!r})"


@dataclass(frozen=True, repr=False)
class TemplateRef:
    """A request's template: its name, version and language (None: latest, default), data."""

    name: str
    version: int | None
    language: str | None
    data: Mapping[str, Any]

    def __repr__(self) -> str:
        return f"TemplateRef({self.name!r}, version={self.version}, language={self.language!r})"


@dataclass(frozen=True, repr=False)
class EmailRequest:
    """A validated v1 request, structured or raw.

    In structured mode `subject` is set and `raw` is None; in raw mode `raw`
    holds the decoded RFC 5322 bytes and the structured fields are empty.
    In raw mode `to`/`cc`/`bcc` are the effective recipients: the request's
    own lists when `replace_raw_recipients` is true, otherwise the ones read
    from the raw message's headers. Likewise `sender` is the request's
    ``from`` if given, else the raw message's From.
    """

    request_id: str
    service_id: str
    sender: Mailbox | None
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    bcc: tuple[Mailbox, ...]
    reply_to: tuple[Mailbox, ...] = ()
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[Attachment | AttachmentRef, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    raw: bytes | None = None
    replace_raw_recipients: bool = False
    replace_raw_sender: bool = False
    template: TemplateRef | None = None
    #: When to send it (docs/formats.md, "Scheduled sending"); None: now.
    send_at: datetime | None = None
    #: ``priority: "high"``: goes before its own service's other waiting sends.
    high_priority: bool = False

    @property
    def is_raw(self) -> bool:
        return self.raw is not None

    @property
    def attachment_refs(self) -> tuple[AttachmentRef, ...]:
        """The attachments to read from Cloud Storage before the message can be built."""
        return tuple(a for a in self.attachments if isinstance(a, AttachmentRef))

    @property
    def from_address(self) -> str | None:
        """Bare ASCII From address (``user@xn--domain``), or None to use the service default."""
        return self.sender.address if self.sender is not None else None

    @property
    def from_domain(self) -> str | None:
        """ASCII lower-case domain of `from_address`, for the allowed-domain check."""
        return self.sender.domain if self.sender is not None else None

    @property
    def recipient_count(self) -> int:
        return len(self.to) + len(self.cc) + len(self.bcc)

    @property
    def envelope_recipients(self) -> tuple[str, ...]:
        """ASCII addresses SES will deliver to (To, then Cc, then Bcc)."""
        return tuple(m.address for m in (*self.to, *self.cc, *self.bcc))

    def __repr__(self) -> str:
        # Deliberately a summary: addresses, bodies and attachments are personal data.
        parts = ", ".join(f"{k}={v!r}" for k, v in request_summary_for_logs(self).items())
        return f"EmailRequest({parts})"


def request_summary_for_logs(request: EmailRequest) -> dict[str, object]:
    """Counts and flags describing `request`, safe to log.

    Contains no addresses, subject, bodies, header values or attachment
    names; the From domain is included because it is what sender checks act on.
    """
    return {
        "request_id": request.request_id,
        "service_id": request.service_id,
        "mode": "raw" if request.is_raw else "structured",
        "from_domain": request.from_domain,
        "recipient_count": request.recipient_count,
        "to_count": len(request.to),
        "cc_count": len(request.cc),
        "bcc_count": len(request.bcc),
        "has_text": request.text is not None,
        "has_html": request.html is not None,
        "header_count": len(request.headers),
        "attachment_count": len(request.attachments),
        "attachment_ref_count": len(request.attachment_refs),
        "attachment_bytes": sum(
            len(a.content) for a in request.attachments if isinstance(a, Attachment)
        ),
        "raw_bytes": len(request.raw) if request.raw is not None else 0,
        "tag_count": len(request.tags),
        "template": request.template.name if request.template is not None else None,
    }


def is_reserved_header(name: str) -> bool:
    """True if a request may not set header `name` (case-insensitive)."""
    lowered = name.lower()
    return lowered in RESERVED_HEADER_NAMES or lowered.startswith(RESERVED_HEADER_PREFIXES)
