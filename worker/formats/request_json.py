"""The first step of reading a request: its bytes as strict JSON.

UTF-8 only, a bounded nesting depth checked before parsing, no duplicate keys, no NaN or
Infinity, no unpaired surrogate escapes; anything else is refused as ``invalid_json``.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from worker.formats.error_codes import ErrorCode
from worker.formats.json_depth import MAX_JSON_DEPTH, nested_too_deep
from worker.formats.rejection import reject

_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def decode_json(data: bytes) -> Any:
    try:
        # Decoded explicitly: json.loads(bytes) would also accept UTF-16/32.
        text = bytes(data).decode("utf-8")
    except (UnicodeDecodeError, TypeError, ValueError):
        reject(ErrorCode.INVALID_JSON, "the message data is not valid UTF-8")
    if nested_too_deep(text):
        reject(
            ErrorCode.INVALID_JSON,
            f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep",
        )
    try:
        document = json.loads(
            text,
            object_pairs_hook=_object_without_duplicate_keys,
            parse_constant=_refuse_json_constant,
        )
    except _DuplicateKeyError as exc:
        reject(ErrorCode.INVALID_JSON, f"duplicate key {quote_name(exc.key)} in a JSON object")
    except json.JSONDecodeError as exc:
        reject(
            ErrorCode.INVALID_JSON,
            f"the message data is not valid JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno})",
        )
    except (ValueError, RecursionError):
        # NaN/Infinity, integers beyond the digit limit; RecursionError only as a backstop
        # to the depth check above.
        reject(ErrorCode.INVALID_JSON, "the message data is not acceptable JSON")
    if _contains_lone_surrogate(document):
        reject(ErrorCode.INVALID_JSON, "the JSON contains an unpaired UTF-16 surrogate escape")
    return document


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__("duplicate key")
        self.key = key


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which duplicate wins; refusing them avoids smuggling.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _refuse_json_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _contains_lone_surrogate(document: Any) -> bool:
    # Iterative so that deeply nested (but parseable) JSON cannot exhaust the stack.
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE_RE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def quote_name(name: str) -> str:
    """A field or key name for an error message: escaped and truncated."""
    shown = name if len(name) <= 40 else name[:40] + "..."
    return json.dumps(shown)
