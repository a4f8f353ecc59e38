"""JSON Schemas (draft 2020-12) of the v1 request, result and event formats.

They ship inside the package so that services can validate their requests
before publishing (``load_schema("request-v1")``). The schemas are checked
against the code by tests; where a rule cannot be written as a schema (email
address syntax, total recipient count, raw message contents) the schema is
looser and the worker is the authority.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

__all__ = ["SCHEMA_NAMES", "load_schema"]

SCHEMA_NAMES: tuple[str, ...] = ("request-v1", "result-v1", "event-v1", "cancel-v1")


def load_schema(name: str) -> dict[str, Any]:
    """Return a fresh copy of schema `name` (one of `SCHEMA_NAMES`).

    Raises ValueError for any other name, so it cannot be used to read
    arbitrary package files.
    """
    if name not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {name!r}; expected one of {', '.join(SCHEMA_NAMES)}")
    text = files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
