"""Just enough of Docker's own reading of a Dockerfile and a .dockerignore for tests.

No Docker engine runs here, so the tests read the files the way the builder would: instructions
with their line continuations, stages, ``ARG`` defaults and ``ENV`` values, the exec (JSON) form
of ``ENTRYPOINT``/``CMD``, and the build context left by ``.dockerignore`` (moby's
patternmatcher rules: last matching pattern wins, ``!`` re-includes, a pattern matching a
directory matches everything below it, ``**`` spans directories).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DockerIgnore", "Dockerfile", "Instruction", "Stage"]

_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for the shell form."""
        try:
            value = json.loads(self.arguments)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        return None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def args(self, global_args: dict[str, str]) -> dict[str, str]:
        """ARG defaults visible in this stage (a global ARG must be re-declared to be seen)."""
        values: dict[str, str] = {}
        for instruction in self.all("ARG"):
            name, _, default = instruction.arguments.partition("=")
            name = name.strip()
            values[name] = default.strip() if default else global_args.get(name, "")
        return values

    def env(self, global_args: dict[str, str]) -> dict[str, str]:
        """ENV values set in this stage, ARGs and earlier ENVs substituted."""
        scope = self.args(global_args)
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for word in shlex.split(instruction.arguments):
                name, sep, value = word.partition("=")
                if not sep:  # legacy `ENV NAME value` form
                    raise AssertionError(f"line {instruction.line}: use ENV NAME=value")
                values[name] = substitute(value, {**scope, **values})
        return values


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace $NAME and ${NAME} that ``values`` knows; leave the others as they are."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, text)


class Dockerfile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.instructions = list(_instructions(path.read_text()))
        self.global_args: dict[str, str] = {}
        self.stages: list[Stage] = []
        for instruction in self.instructions:
            if instruction.keyword == "FROM":
                words = instruction.arguments.split()
                words = [w for w in words if not w.startswith("--")]
                name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
                base = substitute(words[0], self.global_args)
                self.stages.append(Stage(base=base, name=name))
            elif not self.stages:
                if instruction.keyword == "ARG":
                    key, _, default = instruction.arguments.partition("=")
                    self.global_args[key.strip()] = default.strip()
            else:
                self.stages[-1].instructions.append(instruction)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def _instructions(text: str) -> Iterator[Instruction]:
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            # Comments (and parser directives) are dropped, even inside a continuation.
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, arguments = joined.partition(" ")
        yield Instruction(keyword.upper(), arguments.strip(), start)
    if pending:
        raise AssertionError("the Dockerfile ends inside a line continuation")


class DockerIgnore:
    """Which paths of the context a .dockerignore keeps out."""

    def __init__(self, path: Path) -> None:
        self.patterns: list[tuple[bool, re.Pattern[str]]] = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            if negated:
                line = line[1:].strip()
            cleaned = os.path.normpath(line.lstrip("/")).replace(os.sep, "/")
            self.patterns.append((negated, _compile(cleaned)))

    def excludes(self, relative: str) -> bool:
        """Moby's MatchesOrParentMatches: a pattern also matches every parent directory."""
        parts = relative.strip("/").split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for negated, pattern in self.patterns:
            if any(pattern.fullmatch(candidate) for candidate in candidates):
                excluded = not negated
        return excluded

    def context(self, root: Path, source: str) -> list[Path]:
        """The files under ``root/source`` that reach the builder, relative to ``root``."""
        top = root / source
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        return [
            p.relative_to(root) for p in files if not self.excludes(p.relative_to(root).as_posix())
        ]


def _compile(pattern: str) -> re.Pattern[str]:
    regex = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            regex += ".*"
            i += 2
            continue
        if char == "*":
            regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char == "[":
            end = pattern.find("]", i)
            if end == -1:
                regex += re.escape(char)
            else:
                regex += pattern[i : end + 1]
                i = end + 1
                continue
        else:
            regex += re.escape(char)
        i += 1
    return re.compile(regex)
