"""``email-worker send --template`` and ``--attach-gcs``: a template request and attachments
by ``gs://`` reference, published to the emulator as the worker reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.ops.test_cli_send import published
from tests.support.cli_runner import cli_env, invoke
from tests.support.worker_stack import Stack, make_stack

TO = ("--to", "me@example.org", "--service", "billing")


@pytest.fixture
def stack(pubsub_env: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, "http://127.0.0.1:9")


@pytest.fixture
def env(stack: Stack) -> dict[str, str]:
    return cli_env(stack)


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"name": "Ada", "total": "12.50 EUR"}))
    return path


def test_a_template_request_is_published_with_its_data_version_and_language(
    stack: Stack, env: dict[str, str], data_file: Path
) -> None:
    result = invoke(
        env,
        "send",
        *TO,
        "--template",
        "invoice",
        "--template-data",
        str(data_file),
        "--template-version",
        "3",
        "--language",
        "de",
    )
    assert result.exit_code == 0, result.output
    document = published(stack)
    assert document["template"] == {
        "name": "invoice",
        "version": 3,
        "language": "de",
        "data": {"name": "Ada", "total": "12.50 EUR"},
    }
    assert "subject" not in document


def test_a_template_request_without_version_or_language_names_neither(
    stack: Stack, env: dict[str, str], data_file: Path
) -> None:
    result = invoke(env, "send", *TO, "--template", "invoice", "--template-data", str(data_file))
    assert result.exit_code == 0, result.output
    assert set(published(stack)["template"]) == {"name", "data"}


def test_template_data_that_is_not_a_json_object_is_a_usage_error(
    stack: Stack, env: dict[str, str], tmp_path: Path
) -> None:
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    result = invoke(env, "send", *TO, "--template", "invoice", "--template-data", str(listed))
    assert result.exit_code == 2
    assert "must be a JSON object" in result.stderr
    assert stack.nothing_more(stack.queue.subscription, wait_s=1)


def test_a_template_without_data_is_a_usage_error(env: dict[str, str]) -> None:
    result = invoke(env, "send", *TO, "--template", "invoice")
    assert result.exit_code == 2
    assert "--template needs --template-data" in result.stderr


def test_template_options_without_a_template_are_a_usage_error(env: dict[str, str]) -> None:
    result = invoke(env, "send", *TO, "--subject", "Hi", "--text", "x", "--language", "de")
    assert result.exit_code == 2
    assert "--language needs --template" in result.stderr


def test_a_template_with_a_subject_is_refused_as_the_worker_would(
    stack: Stack, env: dict[str, str], data_file: Path
) -> None:
    args = ("--template", "invoice", "--template-data", str(data_file), "--subject", "Hi")
    result = invoke(env, "send", *TO, *args)
    assert result.exit_code == 2
    assert "invalid_request" in result.stderr
    assert stack.nothing_more(stack.queue.subscription, wait_s=1)


def test_an_attachment_by_reference_is_named_and_typed_after_its_object(
    stack: Stack, env: dict[str, str]
) -> None:
    uri = "gs://billing-files/out/2027/invoice-42.pdf"
    result = invoke(env, "send", *TO, "--subject", "Hi", "--text", "x", "--attach-gcs", uri)
    assert result.exit_code == 0, result.output
    assert published(stack)["attachments"] == [
        {"filename": "invoice-42.pdf", "content_type": "application/pdf", "gcs": uri}
    ]


def test_an_attachment_by_reference_takes_the_file_name_given_before_it(
    stack: Stack, env: dict[str, str]
) -> None:
    value = "Rechnung.pdf=gs://billing-files/out/a=b/4711"
    result = invoke(env, "send", *TO, "--subject", "Hi", "--text", "x", "--attach-gcs", value)
    assert result.exit_code == 0, result.output
    [attachment] = published(stack)["attachments"]
    assert attachment == {
        "filename": "Rechnung.pdf",
        "content_type": "application/pdf",
        "gcs": "gs://billing-files/out/a=b/4711",
    }


def test_an_attach_gcs_value_that_is_no_gs_address_is_a_usage_error(env: dict[str, str]) -> None:
    args = ("--subject", "Hi", "--text", "x", "--attach-gcs", "s3://bucket/key")
    result = invoke(env, "send", *TO, *args)
    assert result.exit_code == 2
    assert "--attach-gcs takes [FILENAME=]gs://BUCKET/OBJECT" in result.stderr


def test_template_and_attach_gcs_cannot_be_combined_with_file(
    env: dict[str, str], tmp_path: Path, data_file: Path
) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps({"version": 1, "to": ["me@example.org"], "subject": "x"}))
    args = ("--template", "invoice", "--template-data", str(data_file))
    result = invoke(env, "send", "--file", str(path), *args, "--attach-gcs", "gs://b/o")
    assert result.exit_code == 2
    assert "--file cannot be combined with --attach-gcs, --template" in result.stderr
