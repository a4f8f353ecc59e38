"""``email-worker templates push|list|render``, including the example in docs/formats.md."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from tests.support.cli_runner import invoke
from worker.sending.template_store import TemplateStore

FORMATS_MD = Path(__file__).resolve().parents[2] / "docs" / "formats.md"


def documented_example() -> tuple[dict[str, str], list[list[str]]]:
    """The template files and the command lines of docs/formats.md's "Publishing" example."""
    section = FORMATS_MD.read_text().split("**Publishing and previewing.**", 1)[1]
    files_block, commands_block = re.findall(r"```(?:text|sh)\n(.*?)```", section, re.S)[:2]
    files = {}
    for line in files_block.splitlines():
        path, content = line.split(maxsplit=1)
        files[path] = content
    commands = [shlex.split(line)[1:] for line in commands_block.splitlines() if line]
    return files, commands


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"EMAIL_WORKER_TEMPLATES_URL": f"file://{tmp_path}/store/{{service_id}}"}


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    files, _ = documented_example()
    for path, content in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(content, encoding="utf-8")
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(previous)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_documented_example_publishes_lists_and_renders(
    env: dict[str, str], workdir: Path
) -> None:
    _, commands = documented_example()
    outputs = [ok(invoke(env, *command)) for command in commands]
    assert outputs[0] == "published billing/invoice version 1\n"
    assert outputs[1] == "invoice  versions 1  latest: de, en (default en)\n"
    assert "Subject: Rechnung für Ada <Lovelace>\n" in outputs[2]
    assert "Hallo Ada <Lovelace>, Sie schulden 12.50 EUR." in outputs[2]
    assert "Subject: Invoice for Ada <Lovelace>" in outputs[3]
    html = (workdir / "invoice.html").read_text()
    assert html == "<p>Dear Ada &lt;Lovelace&gt;, you owe <b>12.50 EUR</b>.</p>"


def test_pushing_again_publishes_the_next_version_and_keeps_the_first(
    env: dict[str, str], workdir: Path, tmp_path: Path
) -> None:
    ok(invoke(env, "templates", "push", "billing", "invoice"))
    (workdir / "invoice" / "en.subject").write_text("Changed")
    assert ok(invoke(env, "templates", "push", "billing", "invoice")).endswith("version 2\n")
    store = TemplateStore("billing", f"file://{tmp_path}/store/billing")
    assert store.load("invoice", 1).parts["en"]["subject"] == "Invoice for {{ name }}"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("en.text", "{% for %}"), "en.text line 1"),
        (("template.json", "{"), "template.json is not valid JSON"),
        (("template.json", '{"default_language": "fr"}'), "'fr' has no parts"),
        (("template.json", '{"default_language": "en", "schema": {"type": 1}}'), "not a valid"),
        (("de.subject", "{{ nickname }}"), "data lacks nickname"),
        (
            (
                "en.text",
                "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}",
            ),
            "took longer than 1.0 s",
        ),
        (("notes.txt", "x"), "notes.txt: not LANGUAGE"),
    ],
)
def test_a_template_that_fails_its_checks_is_not_published(
    env: dict[str, str], workdir: Path, tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    (workdir / "invoice" / change[0]).write_text(change[1])
    result = invoke(env, "templates", "push", "billing", "invoice")
    assert result.exit_code == 2
    assert problem in result.output
    assert not (tmp_path / "store").exists()


def test_rendering_with_data_that_lacks_names_lists_them_and_exits_2(
    env: dict[str, str], workdir: Path
) -> None:
    ok(invoke(env, "templates", "push", "billing", "invoice"))
    (workdir / "partial.json").write_text(json.dumps({"name": "Ada"}))
    result = invoke(env, "templates", "render", "billing", "invoice", "--data", "partial.json")
    assert result.exit_code == 2
    assert "total" in result.output


def test_rendering_another_services_template_is_not_found(
    env: dict[str, str], workdir: Path
) -> None:
    ok(invoke(env, "templates", "push", "billing", "invoice"))
    data = "invoice/sample.json"
    result = invoke(env, "templates", "render", "reports", "invoice", "--data", data)
    assert result.exit_code == 1
    assert "no template 'invoice'" in result.output


def test_listing_a_service_without_templates_says_so(env: dict[str, str]) -> None:
    assert ok(invoke(env, "templates", "list", "billing")) == "billing has no templates\n"


def test_an_invalid_service_id_is_a_usage_error(env: dict[str, str]) -> None:
    assert invoke(env, "templates", "list", "../billing").exit_code == 2
