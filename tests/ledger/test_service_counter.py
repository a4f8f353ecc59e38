"""A closed outcome counter, or one whose ledger was closed, writes nothing more and does not
keep logging failed writes (on a real SQLite ledger that counts the writes tried)."""

from __future__ import annotations

import time
from pathlib import Path

from structlog.testing import capture_logs

from tests.support.counted_writes import WriteCountingSqliteLedger, wait_for_writes
from worker.ledger.send_counts import hour_of
from worker.ledger.service_count_stores import service_counts_of
from worker.ledger.service_counter import ServiceCounter


def test_a_closed_counter_writes_nothing_more_and_logs_nothing(tmp_path: Path) -> None:
    ledger = WriteCountingSqliteLedger(tmp_path / "ledger.db")
    counter = ServiceCounter(ledger, flush_interval_s=0.01)
    counter.add("billing", "sent")
    counter.close()
    written = ledger.writes
    with capture_logs() as logs:
        counter.add("billing", "sent")
        counter.flush()
        time.sleep(0.2)  # twenty flush intervals
        counter.close()
    hour = hour_of(time.time())
    counts = service_counts_of(ledger).read("billing", range(hour - 1, hour + 1))
    ledger.close()
    assert sum(hour_counts.get("sent", 0) for hour_counts in counts.values()) == 1
    assert ledger.writes == written
    assert logs == []


def test_a_counter_stops_flushing_with_one_info_line_once_its_ledger_is_closed(
    tmp_path: Path,
) -> None:
    ledger = WriteCountingSqliteLedger(tmp_path / "ledger.db")
    counter = ServiceCounter(ledger, flush_interval_s=0.01)
    with capture_logs() as logs:
        ledger.close()
        counter.add("billing", "sent")  # starts the background flushes
        wait_for_writes(ledger, 1)
        counter.add("billing", "failed")
        counter.flush()
        counter.close()
    assert ledger.writes == 1
    assert [(line["log_level"], line["event"]) for line in logs] == [
        ("info", "the ledger is closed: outcome counts no longer written")
    ]


def test_a_counter_closed_after_its_ledger_logs_one_info_line_and_no_warning(
    tmp_path: Path,
) -> None:
    ledger = WriteCountingSqliteLedger(tmp_path / "ledger.db")
    counter = ServiceCounter(ledger, flush_interval_s=60.0)
    counter.add("billing", "sent")
    ledger.close()
    with capture_logs() as logs:
        counter.close()
        counter.flush()
    assert ledger.writes == 1
    assert [line["log_level"] for line in logs] == ["info"]
