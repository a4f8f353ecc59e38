"""How deep JSON nests, found without recursion, so absurd nesting is refused before parsing.

The json module recurses once per level of arrays and objects, up to the interpreter's
limit. Finalizers the garbage collector happens to run down there fail for lack of stack,
so a hostile document is refused before it reaches the parser.
"""

from __future__ import annotations

import re

__all__ = ["MAX_JSON_DEPTH", "nested_too_deep"]

#: Arrays and objects inside each other; requests and push envelopes need four at the most.
MAX_JSON_DEPTH = 32

# A JSON string literal (unrolled, so long strings are matched in one tight loop).
_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")
_EMPTY_PAIR_RE = re.compile(r"\[\]|\{\}")
_OPENERS_RUN_RE = re.compile(rf"[\[{{]{{{MAX_JSON_DEPTH + 1}}}")


def nested_too_deep(text: str | bytes) -> bool:
    """Whether arrays and objects in ``text`` nest deeper than `MAX_JSON_DEPTH`.

    Linear in the size of the text. Malformed JSON is not judged: the parser reports it.
    """
    if isinstance(text, bytes):
        if text.count(b"[") + text.count(b"{") <= MAX_JSON_DEPTH:
            return False  # the common case: too few brackets to nest that deep
        text = text.decode("utf-8", errors="replace")
    elif text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    brackets = _NOT_BRACKET_RE.sub("", _STRING_RE.sub("", text))
    if _OPENERS_RUN_RE.search(brackets):
        return True  # quick answer for the usual attack, a long run of openers
    # Each pass removes the innermost level; what is left after the limit is deeper.
    for _ in range(MAX_JSON_DEPTH):
        # One scan, so a pair that a removal brings together waits for the next pass.
        shallower = _EMPTY_PAIR_RE.sub("", brackets)
        if shallower == brackets:
            return False  # balanced and within the limit, or malformed
        brackets = shallower
    return _EMPTY_PAIR_RE.search(brackets) is not None
