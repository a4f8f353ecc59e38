"""The README's configuration table documents every setting the worker reads."""

from __future__ import annotations

from pathlib import Path

from worker.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    text = README.read_text()
    table = text.split("### Configuration", 1)[1].split("## Deploying", 1)[0]
    missing = [v for v, _, _ in Settings.documentation() if f"| `{v}` |" not in table]
    assert missing == []


def test_the_quick_start_is_exactly_make_demo_and_make_test() -> None:
    quick_start = README.read_text().split("## Quick start", 1)[1].split("##", 1)[0]
    block = quick_start.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
