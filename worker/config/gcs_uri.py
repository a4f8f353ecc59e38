"""Strict ``gs://`` names for attachments by reference and the prefixes that allow them.

A request's attachment may name a Cloud Storage object; a service's configuration lists the
``attachment_prefixes`` it may read from. Whether an object lies under a prefix is decided
on these strings alone, so both are parsed strictly and anything that another reader (a
browser, a proxy, a storage library, an IAM condition) might resolve differently is refused
rather than normalised: percent signs (``%2e%2e``, ``%2F``), backslashes, ``.`` and ``..``
segments, empty segments (``//``, a leading or trailing slash), query and fragment marks,
wildcards, whitespace at either end, control and non-ASCII characters, and upper-case or
dotted-dotted bucket names. A prefix must end with ``/``, so ``gs://b/a/`` never matches
``gs://b/ab``, and the bucket is compared whole, so ``gs://bucket/`` never matches
``gs://bucket-other/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "GCS_SCHEME",
    "MAX_OBJECT_NAME_LENGTH",
    "GcsLocation",
    "GcsPrefix",
    "GcsUriError",
    "parse_object_uri",
    "parse_prefix_uri",
]

GCS_SCHEME = "gs://"
MAX_OBJECT_NAME_LENGTH = 1024

# Cloud Storage bucket names: lower-case letters, digits, '-', '_' and '.', 3 to 63
# characters (dotted names up to 222 are not accepted here), starting and ending with a
# letter or digit.
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]")
# Printable ASCII and space, less the characters some reader decodes or treats specially.
_REFUSED_IN_NAME = frozenset("%\\?#[]*")
_ALLOWED_IN_NAME = frozenset(chr(c) for c in range(0x20, 0x7F)) - _REFUSED_IN_NAME


class GcsUriError(ValueError):
    """The text is not an unambiguous ``gs://`` object name or prefix; the reason says why."""


@dataclass(frozen=True)
class GcsLocation:
    """One object: its bucket and its name inside the bucket."""

    bucket: str
    name: str

    @property
    def uri(self) -> str:
        return f"{GCS_SCHEME}{self.bucket}/{self.name}"

    def is_within(self, prefix: GcsPrefix) -> bool:
        """Whether this object lies under `prefix` (same bucket, name starting with its path)."""
        return self.bucket == prefix.bucket and self.name.startswith(prefix.path)


@dataclass(frozen=True)
class GcsPrefix:
    """A bucket and a path ending with ``/`` (or empty, meaning the whole bucket)."""

    bucket: str
    path: str

    @property
    def uri(self) -> str:
        return f"{GCS_SCHEME}{self.bucket}/{self.path}"


def parse_object_uri(text: str) -> GcsLocation:
    """``gs://bucket/name`` as a `GcsLocation`, or `GcsUriError` if it is in any way ambiguous."""
    bucket, name = _split(text)
    if not name:
        raise GcsUriError("it names no object")
    _check_path(name)
    return GcsLocation(bucket=bucket, name=name)


def parse_prefix_uri(text: str) -> GcsPrefix:
    """``gs://bucket/`` or ``gs://bucket/path/`` as a `GcsPrefix`, or `GcsUriError`."""
    bucket, path = _split(text)
    if path:
        if not path.endswith("/"):
            raise GcsUriError("a prefix must end with '/'")
        _check_path(path[:-1])
    return GcsPrefix(bucket=bucket, path=path)


def _split(text: str) -> tuple[str, str]:
    if not text.startswith(GCS_SCHEME):
        raise GcsUriError(f"it does not start with {GCS_SCHEME}")
    bucket, slash, path = text[len(GCS_SCHEME) :].partition("/")
    if not slash:
        raise GcsUriError("no '/' after the bucket name")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise GcsUriError("the bucket name is not a plain lower-case bucket name")
    return bucket, path


def _check_path(path: str) -> None:
    if len(path.encode("ascii", "replace")) > MAX_OBJECT_NAME_LENGTH:
        raise GcsUriError(f"the object name is longer than {MAX_OBJECT_NAME_LENGTH} bytes")
    if not set(path) <= _ALLOWED_IN_NAME:
        raise GcsUriError(
            "the object name has a character that is refused (%, \\, ?, #, [, ], *, "
            "control or non-ASCII)"
        )
    if path != path.strip():
        raise GcsUriError("the object name starts or ends with whitespace")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise GcsUriError("the object name has an empty, '.' or '..' segment")
