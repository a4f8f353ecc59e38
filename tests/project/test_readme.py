"""docs/configuration.md documents every setting, the README's quick start is `make demo` and
`make test`, and every `make` command the README shows has a rule."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from worker.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"


def code_in_readme() -> list[str]:
    """Each line of the README's fenced code blocks, and each of its inline code spans."""
    lines, in_block = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
        elif in_block:
            lines.append(line)
        else:
            lines.extend(line.split("`")[1::2])
    return lines


def make_targets(commands: list[str]) -> list[str]:
    """The targets of every `make ...` command among these, options and comments left out."""
    targets: list[str] = []
    for command in commands:
        words = command.split("#", 1)[0].split()
        if words[:1] == ["make"]:
            targets += [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return list(dict.fromkeys(targets))


def quick_start_commands() -> list[str]:
    quick_start = README.read_text().split("## Quick start", 1)[1].split("##", 1)[0]
    block = quick_start.split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_every_setting_is_in_the_configuration_table() -> None:
    table = CONFIGURATION.read_text()
    missing = [v for v, _, _ in Settings.documentation() if f"| `{v}` |" not in table]
    assert missing == []


def test_the_readme_links_the_configuration_table() -> None:
    assert "(docs/configuration.md)" in README.read_text()


def test_the_readme_lists_docs_architecture_md_first_among_the_docs() -> None:
    documentation = README.read_text().split("\n## Documentation\n", 1)[1]
    first_item = documentation.strip().split("\n", 1)[0]
    assert first_item.startswith("- [docs/architecture.md](docs/architecture.md)")


def test_the_readme_stays_short_enough_to_read_in_ten_minutes() -> None:
    assert len(README.read_text().splitlines()) <= 160


def test_the_quick_start_is_exactly_make_demo_and_make_test() -> None:
    assert quick_start_commands() == ["make demo", "make test"]


def test_the_make_targets_checked_for_a_rule_include_every_quick_start_command() -> None:
    checked = make_targets(code_in_readme())
    assert make_targets(quick_start_commands())
    assert set(make_targets(quick_start_commands())) <= set(checked)


@pytest.mark.parametrize("target", make_targets(code_in_readme()))
def test_every_make_target_the_readme_names_has_a_rule(target: str) -> None:
    # A target listed in .PHONY without a rule, or shadowed by a folder of the same name
    # (demo/), makes `make` print "Nothing to be done" and exit 0: it must not pass silently.
    # -B shows the recipe even when the target's files are up to date (say, `make venv`).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    completed = subprocess.run(
        ["make", "-n", "-B", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert output.strip(), f"`make -n {target}` does nothing"
    assert "Nothing to be done" not in output
    assert "No rule to make target" not in output
