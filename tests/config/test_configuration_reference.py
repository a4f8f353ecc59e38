"""docs/configuration.md is generated from the settings' declarations, so it cannot drift:
these tests fail when the page differs from what the generator prints, and when another page
carries its own copy of a setting's row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from worker.config.reference import reference
from worker.config.settings import Settings
from worker.sending.service_config import DEFAULT_SERVICE_CONFIG_URL

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
REGENERATE = "python -m worker.config.reference > docs/configuration.md"


def test_docs_configuration_md_is_exactly_the_generated_reference() -> None:
    assert CONFIGURATION.read_text() == reference(), f"docs/configuration.md is stale: {REGENERATE}"


def test_the_documented_command_prints_the_reference() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "worker.config.reference"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert completed.stdout == CONFIGURATION.read_text()
    assert REGENERATE in CONFIGURATION.read_text().replace("\n", " ")


def test_every_setting_is_one_row_of_the_reference() -> None:
    rows = [line for line in reference().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [v for v, _, _ in Settings.documentation()]


def test_the_reference_groups_the_settings_by_concern() -> None:
    headings = [line for line in reference().splitlines() if line.startswith("## ")]
    assert len(headings) == len(Settings.groups())
    for attribute, group in Settings.groups():
        assert f"In code: `settings.{attribute}` (`{group.__name__}`)." in reference()


def test_no_other_page_carries_a_copy_of_a_settings_row() -> None:
    variables = [variable for variable, _, _ in Settings.documentation()]
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    copies = [
        f"{page.name}: {line[:60]}"
        for page in pages
        if page != CONFIGURATION
        for line in page.read_text().splitlines()
        if any(line.startswith(f"| `{variable}` |") for variable in variables)
    ]
    assert copies == []


def test_the_reference_shows_the_service_configuration_url_the_library_uses_when_unset() -> None:
    [row] = [
        line for line in reference().splitlines() if "`EMAIL_WORKER_SERVICE_CONFIG_URL`" in line
    ]
    assert f"| `{DEFAULT_SERVICE_CONFIG_URL}` |" in row
    assert Settings.from_env({}).services.config_url is None
