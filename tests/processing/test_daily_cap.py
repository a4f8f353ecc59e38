"""max_per_day: each service's sends counted over every instance, and what a request over the
cap becomes, on a clock the test moves."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from tests.support.clock import ManualClock
from tests.support.counted_writes import WriteCountingSqliteLedger, wait_for_writes
from worker.config.settings import Settings
from worker.ledger import LedgerKey, LedgerUnavailable, MemoryLedger
from worker.ledger.send_counts import HOUR_S, Increments, hour_of, window_hours
from worker.processing.daily_cap import DailyCounts
from worker.processing.pipeline import Delivery, Deps, Outcome, Status, process
from worker.sending.service_config import ServiceConfig
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession

# Half a minute before an hour ends.
START = 1_800_000_000.0 - 1_800_000_000.0 % HOUR_S + HOUR_S - 30
CONFIG = ServiceConfig(
    service_id="billing",
    service_role_arn="arn:aws:iam::123456789012:role/x",
    default_from_address="Billing <billing@example.com>",
    max_per_day=3,
)


class CountingLedger(MemoryLedger):
    """A memory ledger that keeps each write of the counters, and can be down for them."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(claim_lease_s=30, clock=clock)
        self.writes: list[dict[tuple[str, int], int]] = []
        self.reads = 0
        self.down = False

    def sent_by_hour(self, service_id: str, hours: range) -> dict[int, int]:
        self.reads += 1
        return super().sent_by_hour(service_id, hours)

    def add_send_counts(self, increments: Increments, shard: int | None = None) -> None:
        if self.down:
            raise LedgerUnavailable("the ledger is down")
        self.writes.append(dict(increments))
        super().add_send_counts(increments, shard)


def ledger_at(clock: ManualClock) -> CountingLedger:
    return CountingLedger(clock)


def test_sends_counted_here_count_at_once() -> None:
    clock = ManualClock(START)
    counts = DailyCounts(ledger_at(clock), clock=clock)
    counts.add("billing", 2)
    counts.add("billing", 1)
    counts.add("shop", 5)
    assert counts.sent("billing") == 3


def test_a_flush_writes_one_increment_per_service_and_hour() -> None:
    clock = ManualClock(START)
    ledger = ledger_at(clock)
    counts = DailyCounts(ledger, clock=clock)
    for _ in range(100):
        counts.add("billing", 1)
    counts.flush()
    assert ledger.writes == [{("billing", hour_of(START)): 100}]
    assert counts.sent("billing") == 100  # moved from this worker's count to the ledger's


def test_another_instances_flushed_sends_are_seen_after_the_refresh() -> None:
    clock = ManualClock(START)
    ledger = ledger_at(clock)
    here, there = DailyCounts(ledger, clock=clock), DailyCounts(ledger, clock=clock)
    assert here.sent("billing") == 0
    there.add("billing", 4)
    there.flush()
    clock.now += 5
    assert here.sent("billing") == 4


def test_sends_drop_out_of_the_window_an_hour_at_a_time() -> None:
    clock = ManualClock(START)
    counts = DailyCounts(ledger_at(clock), clock=clock)
    counts.add("billing", 4)
    counts.flush()
    clock.now += 24 * HOUR_S
    assert counts.sent("billing") == 4
    assert counts.seconds_until_the_window_moves() == 30
    clock.now += 30
    assert counts.sent("billing") == 0


def test_counts_the_ledger_refused_are_kept_for_the_next_flush() -> None:
    clock = ManualClock(START)
    ledger = ledger_at(clock)
    counts = DailyCounts(ledger, clock=clock)
    counts.add("billing", 2)
    ledger.down = True
    counts.flush()
    assert counts.sent("billing") == 2
    ledger.down = False
    counts.flush()
    assert ledger.sent_in_hours("billing", range(hour_of(START), hour_of(START) + 1)) == 2


def test_closing_flushes_what_is_left() -> None:
    clock = ManualClock(START)
    ledger = ledger_at(clock)
    counts = DailyCounts(ledger, clock=clock, flush_interval_s=3600)
    counts.add("billing", 3)
    counts.close()
    assert ledger.sent_in_hours("billing", range(hour_of(START), hour_of(START) + 1)) == 3


# -- the pipeline ------------------------------------------------------------------------


def run(counts: DailyCounts, config: ServiceConfig, **request: Any) -> tuple[Outcome, int]:
    session = RecordingSession(lambda _: ["ses-1"], service_config=config)
    settings = Settings.from_env(
        {"EMAIL_WORKER_ALLOWED_SERVICES": "billing", "EMAIL_WORKER_TENANCY": "shared"}
    )
    deps = Deps(settings, SessionCache(lambda _: session, ttl_s=60), daily_counts=counts)
    document = {
        "version": 1,
        "service_id": "billing",
        "to": ["alice@example.net"],
        "subject": "Hi",
        "text": "Hello",
        **request,
    }
    delivery = Delivery(json.dumps(document).encode(), {}, message_id="m1", may_hold=True)
    return process(delivery, deps), session.calls


def test_requests_within_the_cap_are_sent_and_counted() -> None:
    clock = ManualClock(START)
    counts = DailyCounts(ledger_at(clock), clock=clock)
    outcome, calls = run(counts, CONFIG, to=["a@example.net", "b@example.net"])
    assert outcome.status is Status.SENT
    assert calls == 1
    assert counts.sent("billing") == 2


def test_over_the_cap_a_request_waits_unsent_until_the_window_moves() -> None:
    clock = ManualClock(START)
    counts = DailyCounts(ledger_at(clock), clock=clock)
    counts.add("billing", 3)
    outcome, calls = run(counts, CONFIG)
    assert (outcome.status, outcome.held_for, outcome.hold_s) == (Status.HELD, "daily_cap", 30)
    assert outcome.error_code == "daily_cap_reached"  # in a result only on push's last attempt
    assert calls == 0


def test_a_request_held_by_the_cap_is_sent_once_the_window_reopens() -> None:
    clock = ManualClock(START)
    counts = DailyCounts(ledger_at(clock), clock=clock)
    counts.add("billing", 3)
    counts.flush()
    assert run(counts, CONFIG)[0].status is Status.HELD
    clock.now += 24 * HOUR_S + 30
    outcome, calls = run(counts, CONFIG)
    assert outcome.status is Status.SENT
    assert calls == 1


def test_over_the_cap_a_service_that_asks_for_it_gets_daily_cap_reached() -> None:
    clock = ManualClock(START)
    counts = DailyCounts(ledger_at(clock), clock=clock)
    counts.add("billing", 3)
    outcome, calls = run(counts, replace(CONFIG, over_daily_cap="reject"))
    assert (outcome.status, outcome.error_code) == (Status.FAILED, "daily_cap_reached")
    assert outcome.error_message is not None
    assert "max_per_day" in outcome.error_message
    assert calls == 0


def test_a_request_larger_than_the_whole_cap_is_refused_rather_than_held_for_ever() -> None:
    clock = ManualClock(START)
    counts = DailyCounts(ledger_at(clock), clock=clock)
    many = [f"r{n}@example.net" for n in range(4)]
    outcome, calls = run(counts, CONFIG, to=many)
    assert (outcome.status, outcome.error_code) == (Status.FAILED, "daily_cap_reached")
    assert calls == 0


def test_a_service_without_a_cap_is_never_held() -> None:
    clock = ManualClock(START)
    counts = DailyCounts(ledger_at(clock), clock=clock)
    counts.add("billing", 10**6)
    outcome, _ = run(counts, replace(CONFIG, max_per_day=None))
    assert outcome.status is Status.SENT


def test_sends_under_way_count_against_the_cap_until_settled() -> None:
    clock = ManualClock(START)
    counts = DailyCounts(ledger_at(clock), clock=clock)
    assert counts.take("billing", 2, cap=3) is None
    assert counts.take("billing", 2, cap=3) == 2  # the first two are being sent
    counts.settle("billing", 2, sent=False)  # ...and were not
    assert counts.take("billing", 3, cap=3) is None
    counts.settle("billing", 3, sent=True)
    assert counts.sent("billing") == 3


def test_a_service_without_a_cap_is_counted_without_reading_the_ledger() -> None:
    clock = ManualClock(START)
    ledger = ledger_at(clock)
    counts = DailyCounts(ledger, clock=clock)
    for _ in range(10):
        assert counts.take("billing", 1, cap=None) is None
        counts.settle("billing", 1, sent=True)
    assert ledger.reads == 0
    counts.flush()
    assert ledger.writes == [{("billing", hour_of(START)): 10}]


def test_a_request_held_by_the_cap_gives_its_ledger_claim_back_and_stores_no_result() -> None:
    clock = ManualClock(START)
    ledger = ledger_at(clock)
    counts = DailyCounts(ledger, clock=clock)
    counts.add("billing", 3)
    session = RecordingSession(lambda _: ["ses-1"], service_config=CONFIG)
    settings = Settings.from_env(
        {"EMAIL_WORKER_ALLOWED_SERVICES": "billing", "EMAIL_WORKER_TENANCY": "shared"}
    )
    deps = Deps(
        settings, SessionCache(lambda _: session, ttl_s=60), daily_counts=counts, ledger=ledger
    )
    document = {"version": 1, "service_id": "billing", "request_id": "r1", "to": ["a@x.net"]}
    document |= {"subject": "Hi", "text": "Hello"}
    delivery = Delivery(json.dumps(document).encode(), {}, message_id="m1", may_hold=True)
    assert process(delivery, deps).status is Status.HELD
    record = ledger.get(LedgerKey("billing", "r1"))
    assert record is not None
    assert (record.owner, record.result) == (None, None)


def test_closed_daily_counts_write_nothing_more_and_log_nothing(tmp_path: Path) -> None:
    ledger = WriteCountingSqliteLedger(tmp_path / "ledger.db")
    counts = DailyCounts(ledger, flush_interval_s=0.01)
    counts.add("billing", 2)
    counts.close()
    written = ledger.writes
    with capture_logs() as logs:
        counts.add("billing", 1)
        counts.flush()
        time.sleep(0.2)  # twenty flush intervals
        counts.close()
    assert ledger.sent_in_hours("billing", window_hours(time.time())) == 2
    ledger.close()
    assert ledger.writes == written
    assert logs == []


def test_daily_counts_stop_flushing_with_one_info_line_once_their_ledger_is_closed(
    tmp_path: Path,
) -> None:
    ledger = WriteCountingSqliteLedger(tmp_path / "ledger.db")
    counts = DailyCounts(ledger, flush_interval_s=0.01)
    with capture_logs() as logs:
        ledger.close()
        counts.add("billing", 2)  # starts the background flushes
        wait_for_writes(ledger, 1)
        counts.add("billing", 1)
        counts.flush()
        counts.close()
    assert ledger.writes == 1
    assert [(line["log_level"], line["event"]) for line in logs] == [
        ("info", "the ledger is closed: send counts no longer written")
    ]


def test_daily_counts_closed_after_their_ledger_log_one_info_line_and_no_warning(
    tmp_path: Path,
) -> None:
    ledger = WriteCountingSqliteLedger(tmp_path / "ledger.db")
    counts = DailyCounts(ledger, flush_interval_s=60.0)
    counts.add("billing", 2)
    ledger.close()
    with capture_logs() as logs:
        counts.close()
        counts.flush()
    assert ledger.writes == 1
    assert [line["log_level"] for line in logs] == ["info"]
