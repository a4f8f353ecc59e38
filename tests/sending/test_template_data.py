"""Template data against the version's JSON Schema, its validator kept per version."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from worker.sending.template_data import SchemaChecks, TemplateDataInvalid
from worker.sending.template_store import TemplateVersion

SCHEMA = {
    "type": "object",
    "required": ["name", "total"],
    "properties": {"total": {"type": "number"}, "lines": {"type": "array"}},
}


def version(number: int, schema: Mapping[str, object] | None = SCHEMA) -> TemplateVersion:
    parts = {"en": {"subject": "s", "text": "t"}}
    return TemplateVersion("billing", "invoice", number, "en", parts, schema)


def test_valid_data_passes() -> None:
    SchemaChecks().check(version(1), {"name": "Ada", "total": 12.5})


def test_every_invalid_and_missing_field_is_named() -> None:
    with pytest.raises(TemplateDataInvalid) as caught:
        SchemaChecks().check(version(1), {"total": "ten", "lines": {}})
    assert caught.value.names == ["lines", "name", "total"]


def test_a_version_without_a_schema_takes_any_data() -> None:
    SchemaChecks().check(version(1, schema=None), {"anything": object()})


def test_each_version_is_checked_against_its_own_schema() -> None:
    checks = SchemaChecks()
    checks.check(version(1), {"name": "Ada", "total": 1})
    with pytest.raises(TemplateDataInvalid):
        checks.check(version(2, schema={"type": "object", "required": ["vat"]}), {"name": "A"})
