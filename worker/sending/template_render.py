"""Rendering a template version with a request's data: sandboxed, escaped, bounded.

Jinja2's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` (the choice is explained in
docs/formats.md). Templates come only from the strings of a published version: there is no
loader, so no file, network or import access; the sandbox refuses attributes that reach
Python's internals. HTML is auto-escaped, subject and text are not.

A missing variable does not stop rendering at the first one: every missing name is collected
and reported together as :class:`TemplateDataInvalid`. Hostile templates are bounded: output
past ``max_output_chars`` or a render past ``time_limit_s`` fails as
:class:`TemplateRenderFailed`, as does whatever
:mod:`worker.sending.template_sandbox` refuses (long ranges, repetitions, powers, widths and
replacements, before they are made). The time is checked
on every line the compiled template runs, through a thread-local trace function, but only in
a part that can repeat itself (a loop, a macro, a call block or a block, which ``self`` can
call again): without them a part runs each of its lines once, and tracing would cost four
times the render.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError

from worker.sending.template_data import SchemaChecks, TemplateDataInvalid
from worker.sending.template_sandbox import BoundedEnvironment
from worker.sending.template_store import TemplateNotFound, TemplateVersion

__all__ = [
    "Rendered",
    "TemplateDataInvalid",
    "TemplateRenderFailed",
    "TemplateRenderer",
]

_CACHE_SIZE = 512
_FILENAME = "<template>"
_MISSING: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "template_missing", default=None
)
#: What lets a part run a line more than once; a part without any is rendered untraced.
_REPEATING = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.Block)


class TemplateRenderFailed(ValueError):
    """The template could not be rendered: a syntax error, a refused operation, a bound hit."""


@dataclass(frozen=True)
class Rendered:
    """A rendered template: what is sent, and which language it was."""

    subject: str
    text: str
    html: str | None
    language: str


class _Recording(jinja2.Undefined):
    """Undefined that notes its name wherever it is used, so every missing name is reported."""

    __slots__ = ()

    def _record(self) -> None:
        if issubclass(self._undefined_exception, SecurityError):
            self._fail_with_undefined_error()
        names = _MISSING.get()
        if names is not None and self._undefined_name not in names:
            names.append(str(self._undefined_name))

    def __str__(self) -> str:
        self._record()
        return ""

    def __iter__(self) -> Iterator[Any]:
        self._record()
        return iter(())

    def __bool__(self) -> bool:
        self._record()
        return False

    def __len__(self) -> int:
        self._record()
        return 0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        self._record()
        return self


class TemplateRenderer:
    """Renders template versions, keeping compiled parts per version and language."""

    def __init__(self, *, max_output_chars: int = 1_000_000, time_limit_s: float = 1.0) -> None:
        self.max_output_chars = max_output_chars
        self.time_limit_s = time_limit_s
        self._environments = {
            True: BoundedEnvironment(autoescape=True, undefined=_Recording),
            False: BoundedEnvironment(autoescape=False, undefined=_Recording),
        }
        # Each compiled part, and whether it can repeat itself (its render is then traced).
        self._compiled: OrderedDict[tuple[Any, ...], tuple[jinja2.Template, bool]] = OrderedDict()
        self._lock = threading.Lock()
        self._schemas = SchemaChecks()

    def render(
        self, version: TemplateVersion, data: Mapping[str, Any], language: str | None = None
    ) -> Rendered:
        """Render ``version`` in ``language`` (default: its own) with ``data``."""
        language = language or version.default_language
        parts = version.parts.get(language)
        if parts is None:
            raise TemplateNotFound(
                f"template {version.name!r} v{version.version} has no language {language!r}"
            )
        self._schemas.check(version, data)
        missing: list[str] = []
        deadline = time.monotonic() + self.time_limit_s  # for all the parts together
        token = _MISSING.set(missing)
        try:
            out = {
                part: self._render_part(version, language, part, deadline, data)
                for part in ("subject", "text", "html")
                if part in parts
            }
        finally:
            _MISSING.reset(token)
        if missing:
            raise TemplateDataInvalid(f"data lacks {', '.join(missing)}", missing)
        if "subject" not in out or "text" not in out:
            raise TemplateRenderFailed(f"template {version.name!r} lacks a subject or text part")
        subject = " ".join(out["subject"].split())
        return Rendered(subject, out["text"], out.get("html"), language)

    def compile(self, version: TemplateVersion, language: str, part: str) -> jinja2.Template:
        """The compiled part, from the cache when this version was compiled before."""
        return self._compiled_part(version, language, part)[0]

    def _compiled_part(
        self, version: TemplateVersion, language: str, part: str
    ) -> tuple[jinja2.Template, bool]:
        """The compiled part and whether it can repeat itself, kept per version."""
        key = (version.service_id, version.name, version.version, language, part)
        with self._lock:
            cached = self._compiled.get(key)
            if cached is not None:
                self._compiled.move_to_end(key)
                return cached
        environment = self._environments[part == "html"]
        source = version.parts[language][part]
        try:
            template = environment.from_string(source)
            repeats = any(environment.parse(source).find(kind) for kind in _REPEATING)
        except jinja2.TemplateSyntaxError as error:
            raise TemplateRenderFailed(
                f"{language}.{part} line {error.lineno}: {error.message}"
            ) from None
        with self._lock:
            self._compiled[key] = (template, repeats)
            while len(self._compiled) > _CACHE_SIZE:
                self._compiled.popitem(last=False)
        return template, repeats

    def _render_part(
        self,
        version: TemplateVersion,
        language: str,
        part: str,
        deadline: float,
        data: Mapping[str, Any],
    ) -> str:
        template, repeats = self._compiled_part(version, language, part)
        chunks: list[str] = []
        size = 0
        try:
            with _deadline(deadline) if repeats else contextlib.nullcontext():
                for chunk in template.generate(dict(data)):
                    size += len(chunk)
                    if size > self.max_output_chars:
                        raise TemplateRenderFailed(
                            f"{language}.{part} longer than {self.max_output_chars} characters"
                        )
                    chunks.append(chunk)
        except _TimeUp:
            raise TemplateRenderFailed(
                f"{language}.{part} took longer than {self.time_limit_s} s"
            ) from None
        except TemplateRenderFailed:
            raise
        except jinja2.UndefinedError as error:
            _note_missing(str(error))
            return ""
        except _RENDER_ERRORS as error:
            # Only the template's own errors are quoted: others may repeat the data.
            detail = f": {error}" if isinstance(error, jinja2.TemplateError) else ""
            raise TemplateRenderFailed(
                f"{language}.{part}: {type(error).__name__}{detail}"
            ) from None
        return "".join(chunks)


_RENDER_ERRORS = (
    jinja2.TemplateError,
    TypeError,
    ValueError,
    ArithmeticError,
    LookupError,
    RecursionError,
)


def _note_missing(message: str) -> None:
    # Jinja's message is "'name' is undefined" (or "... has no attribute 'name'").
    quoted = message.split("'")
    names = _MISSING.get()
    if names is not None:
        names.append(quoted[-2] if len(quoted) >= 3 else "?")


class _TimeUp(Exception):
    pass


class _deadline:
    """Trace this thread's template frames, raising :class:`_TimeUp` once ``at`` has passed."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.previous: Callable[..., Any] | None = None

    def _line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > self.at:
            raise _TimeUp
        return self._line

    def _call(self, frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > self.at:
            raise _TimeUp
        return self._line if frame.f_code.co_filename == _FILENAME else None

    def __enter__(self) -> None:
        self.previous = sys.gettrace()
        sys.settrace(self._call)

    def __exit__(self, *_: object) -> None:
        sys.settrace(self.previous)
