"""The protocol's answers when a store loses the answer to a conditional write that landed.

Firestore retries a call whose answer was lost; the retry of a conditional write that did
land then fails its precondition. The protocol in worker.ledger.base must still answer as if
the write had succeeded. The memory backend's records stand in for such a store here: the
first write goes through and reports failure.
"""

from __future__ import annotations

from tests.ledger.common import LEASE_S, RETENTION_S
from tests.support.clock import ManualClock
from worker.ledger import Claim, ClaimState, LedgerKey, MemoryLedger, StoredResult
from worker.ledger.records import Records, Version
from worker.ledger.shared import Entry

KEY = LedgerKey("billing", "invoice-2027-0042")
HASH = "c0ffee"
SENT = StoredResult("sent", message_ids=("ses-1",), recipient_count=1)


class _LosesOneAnswer(Records[LedgerKey, Entry]):
    """Records whose next conditional write, once armed, lands but answers False."""

    def __init__(self, inner: Records[LedgerKey, Entry]) -> None:
        self.inner = inner
        self.armed = False

    def insert_if_absent(self, key: LedgerKey, record: Entry) -> bool:
        return self.inner.insert_if_absent(key, record)

    def read(self, key: LedgerKey) -> tuple[Entry, Version] | None:
        return self.inner.read(key)

    def write_if_version(self, key: LedgerKey, record: Entry, version: Version) -> bool:
        landed = self.inner.write_if_version(key, record, version)
        if self.armed:
            self.armed = False
            return False
        return landed

    def delete_if_version(self, key: LedgerKey, version: Version) -> bool:
        return self.inner.delete_if_version(key, version)


def ledger_losing_one_answer(clock: ManualClock) -> tuple[MemoryLedger, _LosesOneAnswer]:
    ledger = MemoryLedger(claim_lease_s=LEASE_S, retention_s=RETENTION_S, clock=clock)
    records = _LosesOneAnswer(ledger._requests)
    ledger._requests = records
    return ledger, records


def test_a_takeover_whose_answer_was_lost_is_still_a_takeover(clock: ManualClock) -> None:
    ledger, records = ledger_losing_one_answer(clock)
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    clock.now += LEASE_S + 1
    records.armed = True

    assert ledger.claim(KEY, owner="w2", content_hash=HASH) == Claim(ClaimState.TAKEOVER)
    record = ledger.get(KEY)
    assert record is not None
    assert (record.owner, record.takeovers) == ("w2", 1)


def test_a_completion_whose_answer_was_lost_is_still_complete(clock: ManualClock) -> None:
    ledger, records = ledger_losing_one_answer(clock)
    ledger.claim(KEY, owner="w1", content_hash=HASH)
    records.armed = True

    assert ledger.complete(KEY, owner="w1", result=SENT) is True
    assert ledger.claim(KEY, owner="w2", content_hash=HASH) == Claim(ClaimState.DONE, SENT)
