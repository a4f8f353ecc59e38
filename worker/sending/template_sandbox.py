"""The sandbox templates render in: Jinja2's immutable sandbox, bounded before it allocates.

The render's own bounds (its output's length, its time) are checked as it goes, which is too
late for one step that makes a huge string at once. So the environment refuses, before the
step runs: ranges longer than ``_MAX_RANGE``; numbers past ``_MAX_OPERAND`` as an operand of
``*``, ``**`` or ``%``, or as an argument of any call or filter (``ljust``, ``center``,
``indent``...); repetitions past ``_MAX_OPERAND`` characters or items; ``%`` and ``format``
widths or precisions past ``_MAX_OPERAND`` (and ``%`` widths taken from an argument); and a
``replace`` whose result would pass ``_MAX_STRING``.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["BoundedEnvironment"]

_MAX_RANGE = 10_000
_MAX_OPERAND = 100_000
#: The longest string one call (``replace``) may make; the output's own bound is checked after.
_MAX_STRING = 1_000_000
#: A ``%`` conversion's flags, width and precision, up to its conversion letter.
_PRINTF_SPEC = re.compile(r"%([-#0 +*\d.]*)[a-zA-Z%]")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with no loader and the bounds above."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, *, autoescape: bool, undefined: type[jinja2.Undefined]) -> None:
        super().__init__(autoescape=autoescape, undefined=undefined, loader=None)
        self.globals = {"range": _bounded_range}
        self.filters = {name: _size_checked(f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        for operand in (left, right):
            if isinstance(operand, int) and abs(operand) > _MAX_OPERAND:
                raise SecurityError(f"operand of {operator!r} larger than {_MAX_OPERAND}")
        if operator == "*" and _repeated_length(left, right) > _MAX_OPERAND:
            raise SecurityError("repetition too long")
        if operator == "%" and isinstance(left, str):
            _check_printf_widths(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Every call a template makes (a method such as ``ljust``, ``replace`` or
        ``format``): numbers past ``_MAX_OPERAND`` and strings that would grow past the
        bounds are refused before they are made."""
        _check_arguments(args, kwargs)
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        text = getattr(method, "__self__", None)
        if isinstance(text, str):
            _check_string_method(text, getattr(method, "__name__", ""), args)
        return super().call(__context, __obj, *args, **kwargs)


def _check_string_method(text: str, name: str, args: tuple[Any, ...]) -> None:
    if name == "replace":
        _check_replacement(text, args)
    elif name in ("format", "format_map"):
        for _, _, spec, _ in string.Formatter().parse(text):
            if spec and any(int(n) > _MAX_OPERAND for n in re.findall(r"\d+", spec)):
                raise SecurityError(f"format width larger than {_MAX_OPERAND}")


def _check_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and abs(value) > _MAX_OPERAND:
            raise SecurityError(f"argument larger than {_MAX_OPERAND}")


def _check_replacement(text: str, args: tuple[Any, ...]) -> None:
    """Refuse a ``replace`` whose result would be longer than ``_MAX_STRING``."""
    if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        old, new = args[0], args[1]
        count = text.count(old) if old else len(text) + 1
        if len(text) + count * (len(new) - len(old)) > _MAX_STRING:
            raise SecurityError(f"replacement longer than {_MAX_STRING}")


def _check_printf_widths(text: str) -> None:
    """Refuse ``%`` formatting with a width or precision past ``_MAX_OPERAND``, or taken from
    an argument (``*``)."""
    for flags in _PRINTF_SPEC.findall(text):
        if "*" in flags or any(int(n) > _MAX_OPERAND for n in re.findall(r"\d+", flags)):
            raise SecurityError(f"format width larger than {_MAX_OPERAND}")


def _size_checked(apply: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that refuses numbers past ``_MAX_OPERAND`` (``center``'s width, ``indent``'s)
    and, for ``replace`` and ``format``, results that would grow past the bounds."""

    @functools.wraps(apply)
    def checked(*args: Any, **kwargs: Any) -> Any:
        _check_arguments(args, kwargs)
        values = [a for a in args if isinstance(a, str)]
        if apply.__name__ == "do_replace" and len(values) >= 3:
            _check_replacement(values[0], tuple(values[1:]))
        if apply.__name__ == "do_format" and values:
            _check_printf_widths(values[0])
        return apply(*args, **kwargs)

    return checked


def _repeated_length(left: Any, right: Any) -> int:
    if isinstance(left, int) and isinstance(right, str | list):
        left, right = right, left
    if isinstance(left, str | list) and isinstance(right, int):
        return len(left) * right
    return 0


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > _MAX_RANGE:
        raise SecurityError(f"range longer than {_MAX_RANGE}")
    return numbers
