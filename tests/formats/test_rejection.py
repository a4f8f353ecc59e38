"""The header-text rule shared by request fields and addresses."""

from __future__ import annotations

import pytest

from worker.formats.error_codes import ErrorCode
from worker.formats.rejection import RequestRejected, check_header_text


@pytest.mark.parametrize("brk", ["\r", "\n", "\x00", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"])
def test_any_line_break_is_refused_as_header_injection(brk: str) -> None:
    with pytest.raises(RequestRejected) as refused:
        check_header_text(f"Hello{brk}Bcc: victim@example.com", "subject")
    assert refused.value.code == ErrorCode.HEADER_INJECTION
    assert refused.value.message == "subject contains a line break or NUL character"


def test_other_control_characters_are_refused_with_the_callers_code() -> None:
    with pytest.raises(RequestRejected) as refused:
        check_header_text("a\x07b", "to[0]", code=ErrorCode.INVALID_ADDRESS)
    assert refused.value.code == ErrorCode.INVALID_ADDRESS


def test_a_tab_is_ordinary_header_whitespace() -> None:
    check_header_text("a\tb", "subject")


def test_the_rejection_message_never_repeats_the_value() -> None:
    with pytest.raises(RequestRejected) as refused:
        check_header_text("secret-value\r\n", "x-custom")
    assert "secret-value" not in str(refused.value)
