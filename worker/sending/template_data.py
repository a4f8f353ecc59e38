"""Checking a template request's data against the JSON Schema its template version ships.

A version never changes, so its schema's validator is built once and kept (the last
``_KEPT`` versions): building one per request cost about as much as the check itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jsonschema

from worker.sending.template_store import TemplateVersion

__all__ = ["SchemaChecks", "TemplateDataInvalid"]

_KEPT = 256


class TemplateDataInvalid(ValueError):
    """The data lacks names the template uses, or fails the template's JSON Schema."""

    def __init__(self, reason: str, names: list[str]) -> None:
        super().__init__(reason)
        self.names = names


class SchemaChecks:
    """Checks data against template versions' schemas, each version's validator kept."""

    def __init__(self) -> None:
        self._validators: OrderedDict[tuple[str, str, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, version: TemplateVersion, data: Mapping[str, Any]) -> None:
        """Raise :class:`TemplateDataInvalid` naming every field of ``data`` that fails the
        version's schema (nothing to check without one)."""
        if version.schema is None:
            return
        validator = self._validator(version)
        if validator.is_valid(data):
            return
        errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))
        names = sorted({".".join(map(str, e.path)) or _missing_name(e) for e in errors})
        raise TemplateDataInvalid(f"data fails the template's schema at {', '.join(names)}", names)

    def _validator(self, version: TemplateVersion) -> Any:
        key = (version.service_id, version.name, version.version)
        with self._lock:
            kept = self._validators.get(key)
        if kept is not None:
            return kept
        built = jsonschema.Draft202012Validator(version.schema or {})
        with self._lock:
            self._validators[key] = built
            while len(self._validators) > _KEPT:
                self._validators.popitem(last=False)
        return built


def _missing_name(error: jsonschema.ValidationError) -> str:
    if error.validator == "required" and isinstance(error.instance, Mapping):
        required: Any = error.validator_value
        return ", ".join(name for name in required if name not in error.instance)
    return "(data)"
