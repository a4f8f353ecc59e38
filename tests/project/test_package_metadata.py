"""The package's metadata says what it is, where it lives and under which licence."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def project() -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return table


def test_the_license_file_is_the_mit_license_of_the_email_worker_authors() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 The email-worker authors" in text
    assert project()["license"] == {"text": "MIT"}


def test_the_classifiers_name_the_license_and_the_python_versions_required() -> None:
    classifiers = project()["classifiers"]
    assert "License :: OSI Approved :: MIT License" in classifiers
    minimum = re.fullmatch(r">=(3\.\d+)", project()["requires-python"])
    assert minimum is not None
    assert f"Programming Language :: Python :: {minimum.group(1)}" in classifiers


def test_the_project_urls_name_the_homepage_documentation_issues_and_source() -> None:
    urls = project()["urls"]
    assert set(urls) == {"Homepage", "Documentation", "Issues", "Source"}
    home = "https://github.com/email-worker/email-worker"
    assert all(url.startswith(home) for url in urls.values())
