"""``email-worker send``'s options for what the worker reads itself: a template with its
data (``--template``), and attachments by ``gs://`` reference (``--attach-gcs``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, TYPE_CHECKING

from worker.ops.commands.common import EXIT_USAGE, fail

if TYPE_CHECKING:
    from worker.client import GcsAttachmentSpec, TemplateSpec

__all__ = ["gcs_attachments", "template_spec"]


def template_spec(
    name: str | None, data_file: IO[bytes] | None, version: int | None, language: str | None
) -> TemplateSpec | None:
    """The template the options name, with the data read from ``data_file``; None without
    ``--template`` (then none of its companions may be given)."""
    from worker.client import TemplateSpec

    if name is None:
        companions = (
            ("--template-data", data_file),
            ("--template-version", version),
            ("--language", language),
        )
        given = [option for option, value in companions if value is not None]
        if given:
            fail(f"{', '.join(given)} needs --template", EXIT_USAGE)
        return None
    if data_file is None:
        fail("--template needs --template-data FILE (a JSON object; '{}' for none)", EXIT_USAGE)
    label = getattr(data_file, "name", "the template data")
    try:
        data = json.loads(data_file.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        fail(f"{label}: not a JSON document ({error})", EXIT_USAGE)
    if not isinstance(data, dict):
        fail(f"{label}: the template data must be a JSON object", EXIT_USAGE)
    return TemplateSpec(name=name, data=data, version=version, language=language)


def gcs_attachments(values: tuple[str, ...]) -> list[GcsAttachmentSpec]:
    """``--attach-gcs [FILENAME=]gs://BUCKET/OBJECT`` values as attachments; the file name
    defaults to the object's last path segment, the type is guessed from the file name."""
    from worker.client import GcsAttachmentSpec

    attachments = []
    for value in values:
        filename, found, rest = value.partition("=gs://")
        uri = "gs://" + rest if found else value
        filename = filename if found else ""
        if not uri.startswith("gs://"):
            fail(f"--attach-gcs takes [FILENAME=]gs://BUCKET/OBJECT, not {value!r}", EXIT_USAGE)
        attachments.append(GcsAttachmentSpec(gcs=uri, filename=Path(filename).name or None))
    return attachments
