"""Every command's --help ends with its exit codes, and --version names the installed version."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from worker.app.cli import main


def command_paths(
    group: click.Group = main, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """The words naming every command and group under ``group``, the group itself first."""
    yield prefix
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_the_walk_reaches_the_commands_and_subcommands() -> None:
    paths = set(command_paths())
    assert {(), ("pull",), ("serve",), ("events",), ("dlq", "replay"), ("ledger", "show")} <= paths


@pytest.mark.parametrize("path", list(command_paths()), ids=lambda p: " ".join(p) or "main")
def test_every_command_help_lists_its_exit_codes(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    section = result.output.split("Exit codes:\n", 1)
    assert len(section) == 2, f"`email-worker {' '.join(path)} --help` lists no exit codes"
    codes = [line.split()[0] for line in section[1].splitlines() if line[:6].strip().isdigit()]
    assert {"0", "2"} <= set(codes), section[1]


def test_version_prints_the_installed_package_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"email-worker {importlib.metadata.version('email-worker')}\n"
