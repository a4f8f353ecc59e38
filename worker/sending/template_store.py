"""Where each service's email templates are kept, versioned and never overwritten.

A service's templates live under a base URL filled from a URL template with the
``{environment}`` and ``{service_id}`` placeholders (``file://`` or ``gs://``, like the service
configuration documents, read with the same identity)::

    {base}/{name}/v{N}/template.json          {"default_language": "en", "schema": {...}?}
    {base}/{name}/v{N}/{language}.subject
    {base}/{name}/v{N}/{language}.text
    {base}/{name}/v{N}/{language}.html          (optional)

A version exists once its ``template.json`` does; it is written last. Publishing first claims
``v{N}/.claim`` with a create-only write, so two publishers never share a version and a
published version is never overwritten. Names, languages and service ids are checked against
strict patterns before any path is built, so one service's base can never reach another's.
The store's files are kept by a backend (`worker.sending.template_backends`).
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from worker.sending.errors import ConfigurationError, TransientError
from worker.sending.template_backends import Backend, FileBackend, GcsBackend

__all__ = [
    "DEFAULT_TEMPLATES_URL",
    "PARTS",
    "TEMPLATES_URL_ENV",
    "TemplateNotFound",
    "TemplateStore",
    "TemplateVersion",
    "parse_manifest",
    "valid_language",
    "valid_name",
]

TEMPLATES_URL_ENV = "EMAIL_WORKER_TEMPLATES_URL"
DEFAULT_TEMPLATES_URL = "gs://email-worker-config/{environment}/templates/{service_id}"
#: The parts of one language of a template, by file suffix.
PARTS = ("subject", "text", "html")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,2}")
_VERSION_DIR_RE = re.compile(r"v([1-9][0-9]{0,8})")
_MANIFEST = "template.json"
_CLAIM = ".claim"


class TemplateNotFound(LookupError):
    """The named template, version or language does not exist for this service."""


def valid_name(name: object) -> TypeGuard[str]:
    """Whether ``name`` is a template (or service) name safe to use in a path."""
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def valid_language(language: object) -> TypeGuard[str]:
    """Whether ``language`` is a language tag safe to use in a file name."""
    return isinstance(language, str) and _LANGUAGE_RE.fullmatch(language) is not None


@dataclass(frozen=True)
class TemplateVersion:
    """One published version of a template: its parts by language, default language, schema."""

    service_id: str
    name: str
    version: int
    default_language: str
    parts: Mapping[str, Mapping[str, str]]
    schema: Mapping[str, Any] | None = None
    languages: tuple[str, ...] = field(default=())


def parse_manifest(raw: bytes, where: str) -> tuple[str, Mapping[str, Any] | None]:
    """The default language and optional JSON Schema of a ``template.json``."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ConfigurationError(f"{where}: template.json is not valid JSON") from None
    if not isinstance(document, Mapping):
        raise ConfigurationError(f"{where}: template.json must be a JSON object")
    unknown = sorted(set(document) - {"default_language", "schema"})
    if unknown:
        raise ConfigurationError(f"{where}: template.json has unknown keys {unknown}")
    language = document.get("default_language")
    if not valid_language(language):
        raise ConfigurationError(f"{where}: default_language must be a language tag like 'en'")
    schema = document.get("schema")
    if schema is not None and not isinstance(schema, Mapping):
        raise ConfigurationError(f"{where}: schema must be a JSON Schema object")
    return language, schema


class TemplateStore:
    """One service's templates at ``base`` (a ``file://`` or ``gs://`` URL without the name)."""

    def __init__(self, service_id: str, base: str, *, credentials: Any = None) -> None:
        if not valid_name(service_id):
            raise ConfigurationError(f"service id {service_id!r} cannot hold templates")
        self.service_id = service_id
        self.base = base.rstrip("/")
        url = urllib.parse.urlsplit(self.base)
        if url.scheme == "file":
            self._backend: Backend = FileBackend(urllib.parse.unquote(url.path))
        elif url.scheme == "gs":
            self._backend = GcsBackend(url.netloc, url.path.strip("/"), credentials)
        else:
            raise ConfigurationError(
                f"{TEMPLATES_URL_ENV}: unsupported scheme {url.scheme!r} (use file:// or gs://)"
            )

    @classmethod
    def for_service(
        cls, service_id: str, *, environment: str, url: str | None = None, credentials: Any = None
    ) -> TemplateStore:
        """The store of ``service_id`` from the URL template (default: the environment's)."""
        url = url or os.environ.get(TEMPLATES_URL_ENV) or DEFAULT_TEMPLATES_URL
        if not valid_name(service_id):
            raise ConfigurationError(f"service id {service_id!r} cannot hold templates")
        try:
            base = url.format(environment=environment, service_id=service_id)
        except (KeyError, IndexError, ValueError):
            raise ConfigurationError(
                f"{TEMPLATES_URL_ENV} may hold only the placeholders {{environment}} and "
                "{service_id}"
            ) from None
        return cls(service_id, base, credentials=credentials)

    def versions(self, name: str) -> list[int]:
        """The published versions of ``name``, oldest first (empty when there are none)."""
        if not valid_name(name):
            return []
        found = []
        for entry in self._backend.list(name):
            match = _VERSION_DIR_RE.fullmatch(entry)
            if match and self._backend.exists(f"{name}/{entry}/{_MANIFEST}"):
                found.append(int(match.group(1)))
        return sorted(found)

    def _claimed(self, name: str) -> list[int]:
        """The version numbers of ``name`` claimed so far, finished or not."""
        if not valid_name(name):
            return []
        found = (_VERSION_DIR_RE.fullmatch(entry) for entry in self._backend.list(name))
        return [int(match.group(1)) for match in found if match]

    def names(self) -> list[str]:
        """The service's template names, sorted."""
        return sorted(entry for entry in self._backend.list("") if valid_name(entry))

    def load(self, name: str, version: int | None = None) -> TemplateVersion:
        """A published version (default: the latest); :class:`TemplateNotFound` otherwise."""
        if version is None:
            # The newest folder with a manifest: usually one listing and one read.
            for candidate in sorted(self._claimed(name), reverse=True):
                try:
                    return self.load(name, candidate)
                except TemplateNotFound:
                    continue  # claimed, not yet (or never) finished
            raise TemplateNotFound(f"no template {name!r}")
        if not valid_name(name) or version < 1:
            raise TemplateNotFound(f"no template {name!r} version {version}")
        folder = f"{name}/v{version}"
        manifest = self._backend.read(f"{folder}/{_MANIFEST}")
        if manifest is None:
            raise TemplateNotFound(f"no template {name!r} version {version}")
        default, schema = parse_manifest(manifest, f"template {name!r} v{version}")
        parts: dict[str, dict[str, str]] = {}
        for entry in self._backend.list(folder):
            language, _, part = entry.rpartition(".")
            if part in PARTS and valid_language(language):
                raw = self._backend.read(f"{folder}/{entry}") or b""
                parts.setdefault(language, {})[part] = raw.decode("utf-8", "replace")
        return TemplateVersion(
            self.service_id, name, version, default, parts, schema, tuple(sorted(parts))
        )

    def publish(self, name: str, manifest: bytes, files: Mapping[str, bytes]) -> int:
        """Publish ``files`` (``{language}.{part}`` to bytes) as the next version of ``name``."""
        if not valid_name(name):
            raise ConfigurationError(f"template name {name!r} is not allowed")
        for _ in range(20):
            version = max(self._claimed(name), default=0) + 1
            folder = f"{name}/v{version}"
            if not self._backend.create(f"{folder}/{_CLAIM}", b""):
                continue  # another publisher took this version (or left it unfinished)
            for filename, data in sorted(files.items()):
                self._backend.create(f"{folder}/{filename}", data)
            self._backend.create(f"{folder}/{_MANIFEST}", manifest)
            return version
        raise TransientError(f"could not claim a new version of template {name!r}")
