"""Which version a template request naming none renders: resolved before the claim, pinned by
it, and pinned by the send step when only it could resolve the version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processing.test_pipeline import delivery_of
from tests.processing.test_templates import INVOICE, deps, publish, template_request
from worker.formats.request import EmailRequest, parse_request
from worker.ledger import LedgerKey, SqliteLedger
from worker.processing.held_claims import ClaimLost, HeldClaim
from worker.processing.template_versions import (
    latest_version,
    template_version,
    with_pinned_version,
)
from worker.sending.testing import RecordingSession

KEY = LedgerKey("billing", "invoice-7")


@pytest.fixture
def templates_url(tmp_path: Path) -> str:
    return f"file://{tmp_path}/templates/{{environment}}/{{service_id}}"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.db", claim_lease_s=90) as opened:
        yield opened


def request(**template: object) -> EmailRequest:
    data = delivery_of(template_request(**template)).data
    return parse_request(data, pubsub_message_id="m1", default_service_id=None)


def test_the_latest_version_is_resolved_for_a_request_naming_none(templates_url: str) -> None:
    publish(templates_url, INVOICE)
    publish(templates_url, INVOICE)
    assert latest_version(request(), deps(RecordingSession(), templates_url)) == 2


def test_nothing_is_resolved_for_a_request_naming_its_version(templates_url: str) -> None:
    publish(templates_url, INVOICE)
    assert latest_version(request(version=1), deps(RecordingSession(), templates_url)) is None


def test_nothing_is_resolved_for_a_template_that_does_not_exist(templates_url: str) -> None:
    assert latest_version(request(), deps(RecordingSession(), templates_url)) is None


def test_the_pinned_version_is_named_in_a_request_naming_none() -> None:
    pinned = with_pinned_version(request(), 3)
    assert pinned.template is not None
    assert pinned.template.version == 3


def test_a_request_naming_its_version_keeps_it() -> None:
    kept = with_pinned_version(request(version=1), 3)
    assert kept.template is not None
    assert kept.template.version == 1


def test_the_send_step_pins_a_version_the_claim_did_not(
    templates_url: str, ledger: SqliteLedger
) -> None:
    publish(templates_url, INVOICE)
    ledger.claim(KEY, owner="w1", content_hash="h")  # as if the lookup before it had failed
    held = HeldClaim(ledger, KEY, "w1")
    assert template_version(request(), deps(RecordingSession(), templates_url), held).version == 1
    publish(templates_url, INVOICE)
    ledger.release(KEY, owner="w1")
    ledger.claim(KEY, owner="w2", content_hash="h")
    again = template_version(
        request(), deps(RecordingSession(), templates_url), HeldClaim(ledger, KEY, "w2")
    )
    assert again.version == 1


def test_the_send_step_does_not_render_once_its_claim_is_lost(
    templates_url: str, ledger: SqliteLedger
) -> None:
    publish(templates_url, INVOICE)
    ledger.claim(KEY, owner="w1", content_hash="h")
    with pytest.raises(ClaimLost):
        template_version(
            request(), deps(RecordingSession(), templates_url), HeldClaim(ledger, KEY, "w2")
        )
