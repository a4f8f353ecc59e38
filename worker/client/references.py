"""Parts of a request that refer to what the worker reads itself: a template by name and
data, and an attachment by its ``gs://`` address (see docs/formats.md)."""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GcsAttachmentSpec", "TemplateSpec", "guessed_type"]


def guessed_type(filename: str) -> str:
    """The MIME type of ``filename`` by its extension; compressed or unknown: opaque bytes."""
    guessed, encoding = mimetypes.guess_type(filename)
    return guessed if guessed and not encoding else "application/octet-stream"


@dataclass(frozen=True, repr=False)
class GcsAttachmentSpec:
    """An attachment the worker reads from Cloud Storage when it sends: ``gcs`` is
    ``gs://bucket/object``, under one of the service's ``attachment_prefixes``. The file name
    defaults to the object's last path segment, the type to the one its name suggests."""

    gcs: str
    filename: str | None = None
    content_type: str | None = None

    def to_dict(self) -> dict[str, str]:
        filename = self.filename or self.gcs.rstrip("/").rsplit("/", 1)[-1]
        return {
            "filename": filename,
            "content_type": self.content_type or guessed_type(filename),
            "gcs": self.gcs,
        }

    def __repr__(self) -> str:
        return f"GcsAttachmentSpec(content_type={self.content_type!r})"


@dataclass(frozen=True, repr=False)
class TemplateSpec:
    """One of the service's templates with its data, instead of subject, text and HTML.
    ``version`` None: the latest published; ``language`` None: the template's default."""

    name: str
    data: Mapping[str, Any] = field(default_factory=dict)
    version: int | None = None
    language: str | None = None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"name": self.name}
        if self.version is not None:
            document["version"] = self.version
        if self.language is not None:
            document["language"] = self.language
        document["data"] = dict(self.data)
        return document

    def __repr__(self) -> str:
        return f"TemplateSpec(name={self.name!r}, version={self.version!r})"
