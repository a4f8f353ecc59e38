"""The template library: the latest version looked up at most once per TTL, then again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.processing.test_pipeline import deps_for
from tests.support.clock import ManualClock
from worker.sending.template_library import TemplateLibrary
from worker.sending.template_store import TemplateNotFound, TemplateStore
from worker.sending.testing import RecordingSession

PARTS = {"en.subject": b"Invoice", "en.text": b"Hello"}
MANIFEST = json.dumps({"default_language": "en"}).encode()
TTL_S = 5.0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "templates"


def url(root: Path) -> str:
    return f"file://{root}/{{environment}}/{{service_id}}"


def publish(root: Path, parts: dict[str, bytes] = PARTS) -> int:
    store = TemplateStore.for_service("billing", environment="production", url=url(root))
    return store.publish("invoice", MANIFEST, parts)


def library(root: Path, clock: ManualClock, ttl_s: float = TTL_S) -> TemplateLibrary:
    return TemplateLibrary(environment="production", url=url(root), latest_ttl_s=ttl_s, clock=clock)


def test_within_the_ttl_the_latest_version_is_not_looked_up_in_storage_again(root: Path) -> None:
    clock = ManualClock()
    templates = library(root, clock)
    publish(root)
    assert templates.load("billing", "invoice", None).version == 1
    shutil.rmtree(root)  # any read of storage now finds nothing
    clock.now += TTL_S - 0.1
    assert templates.load("billing", "invoice", None).version == 1


def test_once_the_ttl_passed_the_latest_version_is_looked_up_again(root: Path) -> None:
    clock = ManualClock()
    templates = library(root, clock)
    publish(root)
    templates.load("billing", "invoice", None)
    shutil.rmtree(root)
    clock.now += TTL_S
    with pytest.raises(TemplateNotFound):
        templates.load("billing", "invoice", None)


def test_a_newly_published_version_is_used_once_the_ttl_passed(root: Path) -> None:
    clock = ManualClock()
    templates = library(root, clock)
    publish(root)
    assert templates.load("billing", "invoice", None).version == 1
    publish(root, {**PARTS, "en.subject": b"Version two"})
    assert templates.load("billing", "invoice", None).version == 1
    clock.now += TTL_S
    latest = templates.load("billing", "invoice", None)
    assert (latest.version, latest.parts["en"]["subject"]) == (2, "Version two")


def test_with_a_ttl_of_zero_every_lookup_of_the_latest_reads_storage(root: Path) -> None:
    templates = library(root, ManualClock(), ttl_s=0)
    publish(root)
    templates.load("billing", "invoice", None)
    publish(root)
    assert templates.load("billing", "invoice", None).version == 2


def test_a_template_not_found_is_not_remembered(root: Path) -> None:
    templates = library(root, ManualClock())
    with pytest.raises(TemplateNotFound):
        templates.load("billing", "invoice", None)
    publish(root)
    assert templates.load("billing", "invoice", None).version == 1


def test_the_latest_of_each_service_is_remembered_separately(root: Path) -> None:
    templates = library(root, ManualClock())
    publish(root)
    templates.load("billing", "invoice", None)
    with pytest.raises(TemplateNotFound):
        templates.load("reports", "invoice", None)


def test_the_workers_library_takes_its_ttl_from_the_setting() -> None:
    session = RecordingSession()
    deps = deps_for(session, {"EMAIL_WORKER_TEMPLATE_LATEST_TTL_S": "0.25"})
    assert deps.template_library.latest_ttl_s == 0.25
