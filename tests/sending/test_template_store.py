"""Template storage: per service, versioned, never overwritten, on file:// and gs://."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.sending.errors import ConfigurationError
from worker.sending.template_store import TemplateNotFound, TemplateStore

MANIFEST = json.dumps({"default_language": "en"}).encode()
FILES = {"en.subject": b"Hello {{ name }}", "en.text": b"Hi {{ name }}", "de.subject": b"Hallo"}


@pytest.fixture(params=["file", "gs"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file://{tmp_path}/{{environment}}/{{service_id}}"
    gcs: Any = request.getfixturevalue("gcs_env")
    bucket = gcs.create_bucket()
    return f"gs://{bucket}/{{environment}}/templates/{{service_id}}"


def store(url: str, service: str = "billing") -> TemplateStore:
    return TemplateStore.for_service(service, environment="test", url=url)


def test_a_published_template_is_read_back_with_every_language(url: str) -> None:
    version = store(url).publish("invoice", MANIFEST, FILES)
    loaded = store(url).load("invoice")
    assert (version, loaded.version, loaded.default_language) == (1, 1, "en")
    assert loaded.parts["en"] == {"subject": "Hello {{ name }}", "text": "Hi {{ name }}"}
    assert loaded.languages == ("de", "en")


def test_publishing_again_creates_the_next_version_and_keeps_the_old_one(url: str) -> None:
    store(url).publish("invoice", MANIFEST, FILES)
    assert store(url).publish("invoice", MANIFEST, {"en.subject": b"second"}) == 2
    assert store(url).versions("invoice") == [1, 2]
    assert store(url).load("invoice", 1).parts["en"]["subject"] == "Hello {{ name }}"
    assert store(url).load("invoice").parts["en"]["subject"] == "second"


def test_templates_are_listed_by_name(url: str) -> None:
    store(url).publish("welcome", MANIFEST, FILES)
    store(url).publish("invoice", MANIFEST, FILES)
    assert store(url).names() == ["invoice", "welcome"]


def test_another_services_template_is_not_found(url: str) -> None:
    store(url, "billing").publish("invoice", MANIFEST, FILES)
    with pytest.raises(TemplateNotFound):
        store(url, "reports").load("invoice")


def test_a_missing_version_is_not_found(url: str) -> None:
    store(url).publish("invoice", MANIFEST, FILES)
    with pytest.raises(TemplateNotFound):
        store(url).load("invoice", 2)


@pytest.mark.parametrize("name", ["../billing/invoice", "Invoice", "a/b", "", "x" * 65])
def test_a_name_that_could_leave_the_services_folder_is_not_found(url: str, name: str) -> None:
    with pytest.raises(TemplateNotFound):
        store(url).load(name, 1)


def test_an_unfinished_version_is_skipped_by_the_next_publisher(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/{{service_id}}"
    (tmp_path / "billing" / "invoice" / "v1").mkdir(parents=True)
    (tmp_path / "billing" / "invoice" / "v1" / ".claim").write_bytes(b"")
    assert store(url).publish("invoice", MANIFEST, FILES) == 2
    assert store(url).versions("invoice") == [2]


def test_a_service_id_unfit_for_a_path_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        store(f"file://{tmp_path}/{{service_id}}", "../other")


def test_an_unsupported_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unsupported scheme"):
        store("https://example.org/{service_id}")


def test_the_latest_is_the_newest_finished_version(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/{{service_id}}"
    store(url).publish("invoice", MANIFEST, FILES)
    (tmp_path / "billing" / "invoice" / "v2").mkdir()
    (tmp_path / "billing" / "invoice" / "v2" / ".claim").write_bytes(b"")
    assert store(url).load("invoice").version == 1
