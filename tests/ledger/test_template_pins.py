"""The template version a request naming none was first sent with, pinned on its claim by
every ledger backend (memory, SQLite, Firestore)."""

from __future__ import annotations

from tests.ledger.common import LEASE_S
from tests.support.clock import ManualClock
from worker.ledger import ClaimState, Ledger, LedgerKey, StoredResult, content_hash

KEY = LedgerKey("billing", "invoice-7")
HASH = content_hash(b'{"template": {"name": "invoice", "data": {}}}')


def test_the_first_pin_of_a_template_version_is_recorded_on_the_claim(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    assert ledger.pin_template_version(KEY, owner="w1", version=3) == 3
    record = ledger.get(KEY)
    assert record is not None
    assert record.template_version == 3


def test_a_delivery_after_a_release_gets_the_template_version_pinned_first(
    ledger: Ledger,
) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.pin_template_version(KEY, owner="w1", version=1)
    ledger.release(KEY, owner="w1")
    ledger.claim(KEY, owner="w2", content_hash=HASH)
    assert ledger.pin_template_version(KEY, owner="w2", version=2) == 1


def test_a_takeover_gets_the_template_version_pinned_first(
    ledger: Ledger, clock: ManualClock
) -> None:
    ledger.claim(KEY, owner="crashed", content_hash=HASH)
    ledger.pin_template_version(KEY, owner="crashed", version=1)
    clock.now += LEASE_S + 1
    assert ledger.claim(KEY, owner="w2", content_hash=HASH).state is ClaimState.TAKEOVER
    assert ledger.pin_template_version(KEY, owner="w2", version=2) == 1


def test_a_replay_of_an_unsent_request_keeps_its_pinned_template_version(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.pin_template_version(KEY, owner="w1", version=4)
    ledger.complete(KEY, owner="w1", result=StoredResult("failed", error_code="throttled"))
    ledger.claim(KEY, owner="replay", content_hash=HASH, retry_unsent=True)
    assert ledger.pin_template_version(KEY, owner="replay", version=5) == 4


def test_pinning_a_template_version_without_the_claim_pins_nothing(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    assert ledger.pin_template_version(KEY, owner="w2", version=1) is None
    record = ledger.get(KEY)
    assert record is not None
    assert record.template_version is None


def test_a_template_version_and_attachment_generations_are_pinned_side_by_side(
    ledger: Ledger,
) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.pin_template_version(KEY, owner="w1", version=2)
    ledger.pin_attachments(KEY, owner="w1", generations=(9,))
    record = ledger.get(KEY)
    assert record is not None
    assert (record.template_version, record.attachment_generations) == (2, (9,))


# -- pinned by the claim itself (no write of its own) ---------------------------------------


def test_a_first_claim_pins_the_template_version_it_is_given(ledger: Ledger) -> None:
    claim = ledger.claim(KEY, owner="w1", content_hash=HASH, template_version=3)
    assert (claim.state, claim.template_version) == (ClaimState.CLAIMED, 3)
    record = ledger.get(KEY)
    assert record is not None
    assert record.template_version == 3


def test_a_claim_after_a_release_answers_the_version_pinned_first(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH, template_version=1)
    ledger.release(KEY, owner="w1")
    claim = ledger.claim(KEY, owner="w2", content_hash=HASH, template_version=2)
    assert (claim.state, claim.template_version) == (ClaimState.CLAIMED, 1)


def test_a_takeover_answers_the_version_pinned_first(ledger: Ledger, clock: ManualClock) -> None:
    ledger.claim(KEY, owner="crashed", content_hash=HASH, template_version=1)
    clock.now += LEASE_S + 1
    claim = ledger.claim(KEY, owner="w2", content_hash=HASH, template_version=2)
    assert (claim.state, claim.template_version) == (ClaimState.TAKEOVER, 1)


def test_a_replay_claim_answers_the_version_pinned_first(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH, template_version=4)
    ledger.complete(KEY, owner="w1", result=StoredResult("failed", error_code="throttled"))
    claim = ledger.claim(
        KEY, owner="replay", content_hash=HASH, retry_unsent=True, template_version=5
    )
    assert claim.template_version == 4


def test_a_claim_answers_a_version_the_send_step_pinned(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.pin_template_version(KEY, owner="w1", version=1)
    ledger.release(KEY, owner="w1")
    assert (
        ledger.claim(KEY, owner="w2", content_hash=HASH, template_version=2).template_version == 1
    )


def test_a_claim_of_a_record_without_a_pin_pins_the_version_given(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.release(KEY, owner="w1")
    assert (
        ledger.claim(KEY, owner="w2", content_hash=HASH, template_version=2).template_version == 2
    )
    record = ledger.get(KEY)
    assert record is not None
    assert record.template_version == 2


def test_claiming_again_as_the_holder_answers_the_pinned_version(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH, template_version=6)
    assert (
        ledger.claim(KEY, owner="w1", content_hash=HASH, template_version=7).template_version == 6
    )
