"""How a setting is declared: its variable, default, parser and meaning, in one place.

Every field of a settings group is made with :func:`setting`, which names the parser
explicitly (nothing is guessed from the annotation). :func:`read_group` builds a group from
an environment with those parsers; the reference (:mod:`worker.config.reference`), the
``check`` listing and the unknown-name check read the same declarations.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

__all__ = [
    "Spec",
    "choice",
    "env_name",
    "number",
    "optional",
    "read_group",
    "service_names",
    "setting",
    "specs",
    "switch",
    "text",
    "whole_number",
]

T = TypeVar("T")
E = TypeVar("E", bound=enum.StrEnum)


@dataclasses.dataclass(frozen=True)
class Spec:
    """One setting as declared: its attribute in the group, variable, parser and docs."""

    attribute: str
    variable: str
    default: Any
    parse: Callable[[str], Any]
    doc: str
    #: How the reference shows the default, when the value alone would mislead.
    shown_default: str | None


def setting(
    variable: str,
    default: T,
    parse: Callable[[str], T],
    doc: str,
    *,
    shown_default: str | None = None,
) -> T:
    """A settings-group field read from ``variable`` with ``parse`` (which raises
    ``ValueError`` with a short reason), ``default`` when unset or blank."""
    metadata = {"env": variable, "parse": parse, "doc": doc, "shown_default": shown_default}
    result: T = dataclasses.field(default=default, metadata=metadata)
    return result


def specs(group: type[Any] | object) -> Iterator[Spec]:
    """The declared settings of a group class (or instance), in declaration order."""
    for spec in dataclasses.fields(group):  # type: ignore[arg-type]
        yield Spec(
            spec.name,
            spec.metadata["env"],
            spec.default,
            spec.metadata["parse"],
            spec.metadata["doc"],
            spec.metadata["shown_default"],
        )


def env_name(group: type[Any] | object, attribute: str) -> str:
    """The variable of ``group``'s setting ``attribute``."""
    return next(s.variable for s in specs(group) if s.attribute == attribute)


def read_group(group: type[T], environ: Mapping[str, str], problems: list[str]) -> T:
    """``group`` with every variable set in ``environ`` parsed; each value that does not
    parse is a problem (``VARIABLE='raw': reason``) and leaves its default."""
    values: dict[str, Any] = {}
    for spec in specs(group):
        raw = environ.get(spec.variable, "").strip()
        if not raw:
            continue
        try:
            values[spec.attribute] = spec.parse(raw)
        except ValueError as error:
            problems.append(f"{spec.variable}={raw!r}: {error}")
    return group(**values)


def text(raw: str) -> str:
    """The value as written (already stripped)."""
    return raw


def whole_number(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("not a whole number") from None


def number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("not a number") from None


def switch(raw: str) -> bool:
    value = raw.lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise ValueError("must be on or off")


def service_names(raw: str) -> frozenset[str]:
    """A comma-separated list, blanks dropped."""
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def optional(parse: Callable[[str], T]) -> Callable[[str], T | None]:
    """``parse`` for a setting whose default is None (unset)."""

    def parse_optional(raw: str) -> T | None:
        return parse(raw)

    return parse_optional


def choice(enumeration: type[E], *, ignore_case: bool = False) -> Callable[[str], E]:
    """A parser accepting exactly the values of ``enumeration``."""
    values = [member.value for member in enumeration]
    listed = " or ".join(values) if len(values) == 2 else "one of " + ", ".join(values)

    def parse_choice(raw: str) -> E:
        value = raw.upper() if ignore_case else raw
        if value not in values:
            raise ValueError(f"must be {listed}")
        return enumeration(value)

    return parse_choice
