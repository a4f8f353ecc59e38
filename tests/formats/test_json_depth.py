"""Nesting depth of JSON, measured without recursion."""

from __future__ import annotations

import json

import pytest

from worker.formats.json_depth import MAX_JSON_DEPTH, nested_too_deep


def arrays(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_a_document_at_the_limit_passes_and_one_level_more_does_not() -> None:
    assert not nested_too_deep(arrays(MAX_JSON_DEPTH))
    assert nested_too_deep(arrays(MAX_JSON_DEPTH + 1))


def test_objects_and_arrays_count_alike() -> None:
    levels = MAX_JSON_DEPTH + 1
    mixed = '{"a": [' * (levels // 2) + '{"b": 1}' + "]}" * (levels // 2)
    assert json.loads(mixed)  # valid JSON, levels deep
    assert nested_too_deep(mixed)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"subject": "[{" * 1000, "escaped": '\\"[[[[' * 100})
    assert not nested_too_deep(text)


def test_siblings_do_not_add_depth_but_their_nesting_does() -> None:
    wide = "[" + ", ".join(["[[]]"] * 1000) + "]"
    assert not nested_too_deep(wide)
    # Short runs of openers, each level opened beside an empty sibling.
    deep = "[[], " * MAX_JSON_DEPTH + "1" + "]" * MAX_JSON_DEPTH
    assert nested_too_deep(deep)


def test_bytes_are_measured_like_text() -> None:
    assert nested_too_deep(arrays(100).encode())
    assert not nested_too_deep(b'{"version": 1}')


@pytest.mark.parametrize("malformed", ["[" * 20 + "}" * 20 + "[]" * 20, "]" * 40 + "[" * 10])
def test_malformed_json_is_left_to_the_parser(malformed: str) -> None:
    assert not nested_too_deep(malformed)
