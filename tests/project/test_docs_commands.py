"""Every command line the README and docs/ show is one the command line accepts as written.

The fenced code blocks of README.md and docs/**/*.md (``sh``, ``bash``, ``shell``, ``console``,
and ``$ ``-prompted lines of ``text`` blocks) are read line by line; each command starting
with ``email-worker`` or ``make`` (after any ``NAME=value`` assignments) is checked:

- ``email-worker ...``: click resolves the command and parses its arguments as written, without
  running it. An unknown command, an unknown option, a missing argument or a bad value fails.
- ``make TARGET``: the Makefile has a rule that does something for the target.

Two markers, an HTML comment on the last non-blank line before a block's opening fence:

- ``<!-- needs: cloud -->``: the block needs a real cloud project (terraform outputs,
  Firestore, SES); its lines are not checked. Use it only for such blocks.
- ``<!-- synopsis -->``: the block shows usage, with ``[optional]`` parts and
  ``(a | b)`` choices; every ``--option`` it names must be an option of its command.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from worker.app.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
CLOUD_MARKER = "<!-- needs: cloud -->"
SYNOPSIS_MARKER = "<!-- synopsis -->"
# Where a command ends and the shell takes over again.
SHELL_OPERATORS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "2>", "2>&1"}


@dataclass(frozen=True)
class DocumentedCommand:
    where: str  # file:line
    words: tuple[str, ...]
    marker: str | None

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.words)}"


def logical_lines(block: list[tuple[int, str]], prompted_only: bool) -> list[tuple[int, str]]:
    """The block's lines with backslash continuations joined and ``$ `` prompts removed;
    with ``prompted_only``, only the prompted ones."""
    lines: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, text in block:
        if pending is not None:
            number, text = pending[0], pending[1] + " " + text.strip()
            pending = None
        elif text.startswith("$ "):
            text = text[2:]
        elif prompted_only:
            continue
        if text.rstrip().endswith("\\"):
            pending = (number, text.rstrip()[:-1])
            continue
        lines.append((number, text))
    return lines


def synopsis_lines(block: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """A synopsis' lines, each indented line joined to the one before it."""
    joined: list[tuple[int, str]] = []
    for number, text in block:
        if joined and text[:1].isspace():
            joined[-1] = (joined[-1][0], joined[-1][1] + " " + text.strip())
        else:
            joined.append((number, text))
    return joined


def command_words(text: str) -> tuple[str, ...]:
    """The words of the first command on a shell line: from ``email-worker`` or ``make``
    (after ``NAME=value`` assignments) up to a comment or shell operator; else ()."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: not a line this test reads
        return ()
    while tokens and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tokens[0]):
        tokens.pop(0)
    if not tokens or tokens[0] not in ("email-worker", "make"):
        return ()
    words: list[str] = []
    for token in tokens:
        if token in SHELL_OPERATORS or set(token) <= set("|&;<>"):
            break
        words.append(token)
    return tuple(words)


def documented_commands(document: Path) -> list[DocumentedCommand]:
    commands: list[DocumentedCommand] = []
    lines = document.read_text().splitlines()
    language: str | None = None
    marker: str | None = None
    block: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        fence = re.match(r"^\s*```(\S*)", line)
        if fence and language is None:
            language, block = fence.group(1), []
            before = [text.strip() for text in lines[: number - 1] if text.strip()]
            previous = before[-1] if before else ""
            marker = previous if previous in (CLOUD_MARKER, SYNOPSIS_MARKER) else None
        elif fence:
            if marker == SYNOPSIS_MARKER:
                block = synopsis_lines(block)
            if language in SHELL_LANGUAGES or language == "text":
                for start, text in logical_lines(block, prompted_only=language == "text"):
                    words = command_words(text)
                    if words:
                        where = f"{document.relative_to(ROOT)}:{start}"
                        commands.append(DocumentedCommand(where, words, marker))
            language = None
        elif language is not None:
            block.append((number, line))
    return commands


ALL_COMMANDS = [command for document in DOCUMENTS for command in documented_commands(document)]


def checked(program: str, marker: str | None) -> list[DocumentedCommand]:
    return [c for c in ALL_COMMANDS if c.words[0] == program and c.marker == marker]


def parse(words: tuple[str, ...]) -> click.Context:
    """Resolve ``email-worker WORDS`` to its command and parse its arguments, running
    nothing; a usage error raises click.UsageError."""
    context = main.make_context("email-worker", list(words[1:]), resilient_parsing=False)
    while isinstance(context.command, click.Group):
        group = context.command
        rest = [*context._protected_args, *context.args]
        if not rest:
            return context
        name, command, args = group.resolve_command(context, rest)
        assert command is not None
        assert name is not None
        context = command.make_context(name, args, parent=context, resilient_parsing=False)
    return context


def resolve(words: tuple[str, ...]) -> click.Command:
    """The command ``email-worker WORDS`` names, from its leading words."""
    command: click.Command = main
    for word in words[1:]:
        if not isinstance(command, click.Group) or word.startswith(("-", "[", "(")):
            break
        found = command.get_command(click.Context(command), word)
        if found is None:
            raise AssertionError(f"no command {word!r} in `{shlex.join(words)}`")
        command = found
    return command


def unknown_options(words: tuple[str, ...]) -> set[str]:
    """The ``--options`` a synopsis names that its command does not have."""
    resolved = resolve(words)
    known = {name for param in resolved.params for name in param.opts + param.secondary_opts}
    named = {m for word in words for m in re.findall(r"--[a-z][a-z0-9-]*", word)}
    return named - known


def test_the_documents_show_commands_of_every_kind_this_test_checks() -> None:
    # A parser that finds nothing would let every document pass.
    assert len(checked("email-worker", None)) >= 20
    assert checked("email-worker", SYNOPSIS_MARKER)
    assert checked("make", None)
    shown = {shlex.join(c.words) for c in ALL_COMMANDS}
    assert "email-worker dlq list" in shown
    assert "make demo" in shown


def test_the_reader_joins_continued_lines_and_strips_prompts_assignments_and_pipes() -> None:
    block = [(1, "$ A=1 B=2 email-worker send --to x@example.org \\"), (2, "  --wait | jq .")]
    ((number, text),) = logical_lines(block, prompted_only=False)
    assert number == 1
    assert command_words(text) == ("email-worker", "send", "--to", "x@example.org", "--wait")


def test_a_usage_error_is_found_by_the_parse() -> None:
    with pytest.raises(click.UsageError):
        parse(("email-worker", "dlq", "list", "--no-such-option"))
    with pytest.raises(click.UsageError):
        parse(("email-worker", "no-such-command"))


def test_an_option_a_synopsis_names_but_the_command_lacks_is_found() -> None:
    words = ("email-worker", "dlq", "list", "[--limit", "N]", "[--no-such-option]")
    assert unknown_options(words) == {"--no-such-option"}


@pytest.mark.parametrize("command", checked("email-worker", None), ids=str)
def test_every_documented_email_worker_command_parses_as_written(
    command: DocumentedCommand,
) -> None:
    exit_code = 0
    try:
        parse(command.words)
    except click.exceptions.Exit as done:  # --help, --version: printed and done
        exit_code = done.exit_code
    except click.UsageError as error:
        pytest.fail(f"{command}: {error.format_message()}")
    assert exit_code == 0, str(command)


@pytest.mark.parametrize("command", checked("email-worker", SYNOPSIS_MARKER), ids=str)
def test_every_option_of_a_documented_synopsis_exists(command: DocumentedCommand) -> None:
    assert unknown_options(command.words) == set(), str(command)


@pytest.mark.parametrize("command", checked("make", None), ids=str)
def test_every_documented_make_target_has_a_rule(command: DocumentedCommand) -> None:
    targets = [w for w in command.words[1:] if not w.startswith("-") and "=" not in w]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    for target in targets:
        completed = subprocess.run(
            ["make", "-n", "-B", target],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, f"{command}: {completed.stderr}"
        assert completed.stdout.strip(), f"{command}: does nothing"
