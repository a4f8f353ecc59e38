"""What every ledger backend does, each behaviour checked on memory, SQLite and Firestore."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from tests.ledger.common import LEASE_S, RETENTION_S, START, TAKEOVER_WAIT_S
from tests.support.clock import ManualClock
from worker.ledger import (
    Claim,
    ClaimState,
    Ledger,
    LedgerKey,
    ReplayVerdict,
    StoredResult,
    content_hash,
    replay_verdict,
)

KEY = LedgerKey("billing", "invoice-2027-0042")
HASH = content_hash(b'{"to": ["a@example.org"], "subject": "Invoice"}')
OTHER_HASH = content_hash(b'{"to": ["b@example.org"], "subject": "Invoice"}')
SENT = StoredResult("sent", message_ids=("ses-1",), recipient_count=1)


def at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def test_content_hash_is_the_sha256_hex_digest() -> None:
    assert content_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_a_first_claim_is_claimed_and_recorded(ledger: Ledger) -> None:
    assert ledger.claim(KEY, owner="w1", content_hash=HASH) == Claim(ClaimState.CLAIMED)

    record = ledger.get(KEY)
    assert record is not None
    assert (record.key, record.state, record.content_hash, record.owner) == (
        KEY,
        "claimed",
        HASH,
        "w1",
    )
    assert record.lease_until == at(START + LEASE_S)
    assert record.expire_at == at(START + RETENTION_S)
    assert record.created_at == record.updated_at == at(START)
    assert (record.takeovers, record.result) == (0, None)


def test_nothing_is_recorded_for_an_unknown_request(ledger: Ledger) -> None:
    assert ledger.get(KEY) is None


def test_claiming_again_as_the_same_owner_is_claimed(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)

    assert ledger.claim(KEY, owner="w1", content_hash=HASH).state is ClaimState.CLAIMED


def test_a_second_claim_while_the_first_is_live_is_busy(ledger: Ledger, clock: ManualClock) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    clock.now += LEASE_S - 1

    assert ledger.claim(KEY, owner="w2", content_hash=HASH) == Claim(ClaimState.BUSY)
    record = ledger.get(KEY)
    assert record is not None
    assert record.owner == "w1"


def test_a_claim_after_the_lease_expired_is_a_takeover(ledger: Ledger, clock: ManualClock) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    clock.now += LEASE_S + 1

    assert ledger.claim(KEY, owner="w2", content_hash=HASH) == Claim(ClaimState.TAKEOVER)
    record = ledger.get(KEY)
    assert record is not None
    assert (record.owner, record.takeovers) == ("w2", 1)
    assert record.lease_until == at(clock.now + LEASE_S)
    assert record.created_at == at(START)
    assert record.updated_at == at(clock.now)


def test_each_takeover_is_counted(ledger: Ledger, clock: ManualClock) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    for owner in ("w2", "w3"):
        clock.now += LEASE_S + 1
        assert ledger.claim(KEY, owner=owner, content_hash=HASH).state is ClaimState.TAKEOVER

    record = ledger.get(KEY)
    assert record is not None
    assert (record.owner, record.takeovers) == ("w3", 2)


def test_a_completed_request_returns_its_stored_result(ledger: Ledger, clock: ManualClock) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    assert ledger.complete(KEY, owner="w1", result=SENT) is True
    clock.now += LEASE_S * 10

    assert ledger.claim(KEY, owner="w2", content_hash=HASH) == Claim(ClaimState.DONE, SENT)


def test_a_completed_record_keeps_every_result_field(ledger: Ledger, clock: ManualClock) -> None:
    failed = StoredResult(
        "failed",
        message_ids=(),
        error_code="message_rejected",
        error_message="Email address is not verified: «ops@example.org»",
        recipient_count=3,
        template=("invoice", 4, "pt-BR"),
    )
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    clock.now += 5
    ledger.complete(KEY, owner="w1", result=failed)

    record = ledger.get(KEY)
    assert record is not None
    assert (record.state, record.result, record.lease_until) == ("done", failed, None)
    assert record.updated_at == at(START + 5)
    assert record.expire_at == at(START + 5 + RETENTION_S)


def test_several_message_ids_survive_the_round_trip(ledger: Ledger) -> None:
    sent = StoredResult("sent", message_ids=("ses-1", "ses-2", "ses-3"), recipient_count=120)
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.complete(KEY, owner="w1", result=sent)

    assert ledger.claim(KEY, owner="w2", content_hash=HASH).result == sent


def test_a_different_content_hash_is_a_conflict(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)

    assert ledger.claim(KEY, owner="w2", content_hash=OTHER_HASH) == Claim(ClaimState.CONFLICT)


def test_a_different_content_hash_is_a_conflict_after_completion(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.complete(KEY, owner="w1", result=SENT)

    assert ledger.claim(KEY, owner="w2", content_hash=OTHER_HASH) == Claim(ClaimState.CONFLICT)


def test_complete_after_a_takeover_writes_nothing(ledger: Ledger, clock: ManualClock) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    clock.now += LEASE_S + 1
    ledger.claim(KEY, owner="w2", content_hash=HASH)

    assert ledger.complete(KEY, owner="w1", result=SENT) is False
    record = ledger.get(KEY)
    assert record is not None
    assert (record.state, record.owner, record.result) == ("claimed", "w2", None)


def test_complete_without_a_claim_writes_nothing(ledger: Ledger) -> None:
    assert ledger.complete(KEY, owner="w1", result=SENT) is False
    assert ledger.get(KEY) is None


def test_a_second_complete_writes_nothing(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.complete(KEY, owner="w1", result=SENT)

    assert ledger.complete(KEY, owner="w1", result=StoredResult("failed")) is False
    assert ledger.claim(KEY, owner="w2", content_hash=HASH).result == SENT


def test_release_lets_the_next_delivery_claim(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.release(KEY, owner="w1")

    assert ledger.claim(KEY, owner="w2", content_hash=HASH) == Claim(ClaimState.CLAIMED)
    record = ledger.get(KEY)
    assert record is not None
    assert (record.owner, record.takeovers) == ("w2", 0)


def test_a_released_claim_keeps_the_record_and_its_content_hash(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.release(KEY, owner="w1")

    record = ledger.get(KEY)
    assert record is not None
    assert (record.state, record.owner, record.lease_until) == ("claimed", None, None)
    assert record.content_hash == HASH


def test_a_released_claim_still_refuses_other_content(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.release(KEY, owner="w1")

    assert ledger.claim(KEY, owner="w2", content_hash=OTHER_HASH).state is ClaimState.CONFLICT


def test_release_by_another_owner_leaves_the_claim(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.release(KEY, owner="w2")

    assert ledger.claim(KEY, owner="w2", content_hash=HASH).state is ClaimState.BUSY


def test_release_after_a_takeover_leaves_the_new_claim(ledger: Ledger, clock: ManualClock) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    clock.now += LEASE_S + 1
    ledger.claim(KEY, owner="w2", content_hash=HASH)
    ledger.release(KEY, owner="w1")

    record = ledger.get(KEY)
    assert record is not None
    assert record.owner == "w2"


def test_release_after_completion_keeps_the_result(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.complete(KEY, owner="w1", result=SENT)
    ledger.release(KEY, owner="w1")

    assert ledger.claim(KEY, owner="w2", content_hash=HASH) == Claim(ClaimState.DONE, SENT)


def test_release_of_an_unknown_request_does_nothing(ledger: Ledger) -> None:
    ledger.release(KEY, owner="w1")

    assert ledger.get(KEY) is None


def test_an_expired_record_is_treated_as_absent(ledger: Ledger, clock: ManualClock) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.complete(KEY, owner="w1", result=SENT)
    clock.now += RETENTION_S + 1

    assert ledger.get(KEY) is None
    # Even with other content: the old record no longer counts for anything.
    assert ledger.claim(KEY, owner="w2", content_hash=OTHER_HASH) == Claim(ClaimState.CLAIMED)
    record = ledger.get(KEY)
    assert record is not None
    assert (record.state, record.owner, record.content_hash) == ("claimed", "w2", OTHER_HASH)
    assert (record.takeovers, record.result, record.created_at) == (0, None, at(clock.now))
    assert record.expire_at == at(clock.now + RETENTION_S)


def test_a_record_lives_for_the_retention_after_its_last_write(
    ledger: Ledger, clock: ManualClock
) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    clock.now += RETENTION_S - 10
    ledger.complete(KEY, owner="w1", result=SENT)
    clock.now += 20  # past the claim's retention, within the completion's

    assert ledger.claim(KEY, owner="w2", content_hash=HASH) == Claim(ClaimState.DONE, SENT)


def test_the_same_request_id_in_another_service_is_another_request(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    other_service = LedgerKey("marketing", KEY.request_id)

    assert ledger.claim(other_service, owner="w2", content_hash=OTHER_HASH).state is (
        ClaimState.CLAIMED
    )


def test_request_ids_with_slashes_and_unicode_are_kept_verbatim(ledger: Ledger) -> None:
    key = LedgerKey("billing", "orders/2027/ünïcødé ✉/" + "x" * 400)
    similar = LedgerKey("billing", "orders/2027/ünïcødé ✉/" + "x" * 399)
    ledger.claim(key, owner="w1", content_hash=HASH)

    record = ledger.get(key)
    assert record is not None
    assert record.key == key
    assert ledger.get(similar) is None


def test_of_many_threads_claiming_one_key_exactly_one_wins(ledger: Ledger) -> None:
    threads = 20
    barrier = threading.Barrier(threads)

    def claim(index: int) -> ClaimState:
        barrier.wait(timeout=30)
        return ledger.claim(KEY, owner=f"w{index}", content_hash=HASH).state

    with ThreadPoolExecutor(threads) as pool:
        states = list(pool.map(claim, range(threads)))

    assert sorted(states) == sorted([ClaimState.CLAIMED] + [ClaimState.BUSY] * (threads - 1))


def test_of_many_threads_taking_over_one_claim_exactly_one_wins(
    ledger: Ledger, clock: ManualClock
) -> None:
    threads = 20
    barrier = threading.Barrier(threads)
    ledger.claim(KEY, owner="crashed", content_hash=HASH)
    clock.now += LEASE_S + 1

    def claim(index: int) -> ClaimState:
        barrier.wait(timeout=30)
        return ledger.claim(KEY, owner=f"w{index}", content_hash=HASH).state

    with ThreadPoolExecutor(threads) as pool:
        states = list(pool.map(claim, range(threads)))

    assert sorted(states) == sorted([ClaimState.TAKEOVER] + [ClaimState.BUSY] * (threads - 1))
    record = ledger.get(KEY)
    assert record is not None
    assert record.takeovers == 1


def test_a_record_repr_leaves_out_the_error_text(ledger: Ledger) -> None:
    failed = StoredResult("failed", error_code="x", error_message="rejected for ops@example.org")
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.complete(KEY, owner="w1", result=failed)

    assert "ops@example.org" not in repr(ledger.get(KEY))


FAILED_UNSENT = StoredResult("failed", error_code="identity_not_verified", recipient_count=1)
PARTIAL = StoredResult("failed", message_ids=("ses-1",), error_code="partially_sent")


def test_a_retry_of_a_request_that_sent_nothing_claims_it_afresh(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.complete(KEY, owner="w1", result=FAILED_UNSENT)
    claim = ledger.claim(KEY, owner="w2", content_hash=HASH, retry_unsent=True)
    assert claim == Claim(ClaimState.CLAIMED)
    record = ledger.get(KEY)
    assert record is not None
    assert (record.state, record.owner, record.result) == ("claimed", "w2", None)


def test_without_retry_a_request_that_sent_nothing_stays_done(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.complete(KEY, owner="w1", result=FAILED_UNSENT)
    assert ledger.claim(KEY, owner="w2", content_hash=HASH) == Claim(ClaimState.DONE, FAILED_UNSENT)


def test_a_retry_never_reopens_a_sent_request(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.complete(KEY, owner="w1", result=SENT)
    claim = ledger.claim(KEY, owner="w2", content_hash=HASH, retry_unsent=True)
    assert claim == Claim(ClaimState.DONE, SENT)


def test_a_retry_never_reopens_a_partly_sent_request(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.complete(KEY, owner="w1", result=PARTIAL)
    claim = ledger.claim(KEY, owner="w2", content_hash=HASH, retry_unsent=True)
    assert claim == Claim(ClaimState.DONE, PARTIAL)


def test_an_expired_claim_is_taken_over_only_after_the_takeover_wait(
    waiting_ledger: Ledger, clock: ManualClock
) -> None:
    waiting_ledger.claim(KEY, owner="w1", content_hash=HASH)
    clock.now += LEASE_S + TAKEOVER_WAIT_S - 1
    assert waiting_ledger.claim(KEY, owner="w2", content_hash=HASH).state is ClaimState.BUSY
    clock.now += 2
    assert waiting_ledger.claim(KEY, owner="w2", content_hash=HASH).state is ClaimState.TAKEOVER


def test_a_released_claim_is_claimed_at_once_whatever_the_takeover_wait(
    waiting_ledger: Ledger,
) -> None:
    waiting_ledger.claim(KEY, owner="w1", content_hash=HASH)
    waiting_ledger.release(KEY, owner="w1")
    assert waiting_ledger.claim(KEY, owner="w2", content_hash=HASH).state is ClaimState.CLAIMED


def test_a_replay_is_vouched_for_only_by_a_live_record_of_the_same_content(
    ledger: Ledger, clock: ManualClock
) -> None:
    data = b'{"to": ["a@example.org"], "subject": "Invoice"}'
    assert replay_verdict(ledger.get(KEY), data) is ReplayVerdict.NO_RECORD
    ledger.claim(KEY, owner="w1", content_hash=content_hash(data))
    ledger.complete(KEY, owner="w1", result=StoredResult("failed", error_code="throttled"))
    assert replay_verdict(ledger.get(KEY), data) is ReplayVerdict.VOUCHED
    assert replay_verdict(ledger.get(KEY), data + b" ") is ReplayVerdict.OTHER_CONTENT
    clock.now += RETENTION_S + 1
    assert replay_verdict(ledger.get(KEY), data) is ReplayVerdict.NO_RECORD


def test_a_retry_keeps_the_record_s_creation_time_and_takeovers(
    ledger: Ledger, clock: ManualClock
) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    clock.now += LEASE_S + 1
    ledger.claim(KEY, owner="w2", content_hash=HASH)
    ledger.complete(KEY, owner="w2", result=FAILED_UNSENT)
    clock.now += 10

    ledger.claim(KEY, owner="w3", content_hash=HASH, retry_unsent=True)

    record = ledger.get(KEY)
    assert record is not None
    assert (record.owner, record.takeovers, record.created_at) == ("w3", 1, at(START))
    assert record.lease_until == at(clock.now + LEASE_S)
    assert record.expire_at == at(clock.now + RETENTION_S)


# -- pinned generations of attachments by reference --------------------------------------


def test_the_first_pin_of_attachments_is_recorded_on_the_claim(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    assert ledger.pin_attachments(KEY, owner="w1", generations=(17, 2**62)) == (17, 2**62)
    record = ledger.get(KEY)
    assert record is not None
    assert record.attachment_generations == (17, 2**62)


def test_a_later_delivery_gets_the_generations_pinned_first(
    ledger: Ledger, clock: ManualClock
) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.pin_attachments(KEY, owner="w1", generations=(1,))
    ledger.release(KEY, owner="w1")
    ledger.claim(KEY, owner="w2", content_hash=HASH)
    assert ledger.pin_attachments(KEY, owner="w2", generations=(2,)) == (1,)


def test_a_replay_of_an_unsent_request_keeps_its_pinned_generations(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    ledger.pin_attachments(KEY, owner="w1", generations=(5,))
    ledger.complete(KEY, owner="w1", result=StoredResult("failed", error_code="throttled"))
    ledger.claim(KEY, owner="replay", content_hash=HASH, retry_unsent=True)
    assert ledger.pin_attachments(KEY, owner="replay", generations=(6,)) == (5,)


def test_pinning_without_holding_the_claim_pins_nothing(ledger: Ledger) -> None:
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    assert ledger.pin_attachments(KEY, owner="w2", generations=(1,)) is None
    record = ledger.get(KEY)
    assert record is not None
    assert record.attachment_generations is None


def test_a_ledger_says_whether_it_was_closed(ledger: Ledger) -> None:
    assert not ledger.closed
    ledger.close()
    assert ledger.closed
