"""A counter reader's memory of final hours: each backend's send counters read through
:class:`FinalHours`, and the cache's own rules with a fetch that records what it is asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ledger.counter_shards import watching_reads
from tests.support.clock import ManualClock
from worker.ledger import Ledger
from worker.ledger.final_hours import (
    DEFAULT_MAX_SERVICES,
    SAFETY_MARGIN_S,
    FinalHours,
    settle_margin_s,
)
from worker.ledger.send_counts import HOUR_S, SHARDS, WINDOW_HOURS, hour_of, window_hours
from worker.ledger.service_counter import FLUSH_INTERVAL_S

DOCS = Path(__file__).resolve().parents[2] / "docs"

SETTLE_S = settle_margin_s(5.0)


def read_day(final: FinalHours[int], ledger: Ledger, now: float) -> int:
    """What the daily cap reads: the day's total, final hours from memory."""

    return sum(final.read("billing", window_hours(now), now, ledger.sent_by_hour).values())


def mid_hour(clock: ManualClock) -> None:
    """Move ``clock`` to the middle of its hour: only the current hour is not final."""
    clock.now = hour_of(clock()) * HOUR_S + HOUR_S / 2


class Recording:
    """A fetch that answers ``counts`` and records the ranges it was asked for."""

    def __init__(self, counts: dict[int, int]) -> None:
        self.counts = counts
        self.asked: list[range] = []

    def __call__(self, service_id: str, hours: range) -> dict[int, int]:
        self.asked.append(hours)
        return {hour: self.counts[hour] for hour in hours if hour in self.counts}


# -- every backend -----------------------------------------------------------------------


def test_a_second_read_of_a_day_reads_only_the_shards_of_the_current_hour(
    ledger: Ledger, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid_hour(clock)
    hour = hour_of(clock())
    for shard in range(SHARDS):
        ledger.add_send_counts({("billing", hour - 3 * shard): 2}, shard=shard)
    final = FinalHours[int](SETTLE_S)
    with watching_reads(ledger, monkeypatch, outcome_counts=False) as first:
        assert read_day(final, ledger, clock()) == 2 * SHARDS
    clock.now += 5
    with watching_reads(ledger, monkeypatch, outcome_counts=False) as second:
        assert read_day(final, ledger, clock()) == 2 * SHARDS
    assert (first.keys, second.keys) == (WINDOW_HOURS * SHARDS, SHARDS)
    assert second.scans == 0


def test_an_increment_in_an_hour_not_yet_final_after_a_read_is_counted(
    ledger: Ledger, clock: ManualClock
) -> None:
    clock.now = hour_of(clock()) * HOUR_S + SETTLE_S - 1  # the last hour is not final yet
    hour = hour_of(clock())
    final = FinalHours[int](SETTLE_S)
    assert read_day(final, ledger, clock()) == 0
    ledger.add_send_counts({("billing", hour - 1): 3})  # a late flush of the last hour
    ledger.add_send_counts({("billing", hour): 4})
    assert read_day(final, ledger, clock()) == 7


def test_the_total_of_a_day_stays_exact_as_the_window_moves(
    ledger: Ledger, clock: ManualClock
) -> None:
    final = FinalHours[int](SETTLE_S)
    for step in range(60):  # 30 hours, twice an hour, an increment within the margin
        hour = hour_of(clock())
        ledger.add_send_counts({("billing", hour): step + 1})
        if clock() % HOUR_S < SETTLE_S:
            ledger.add_send_counts({("billing", hour - 1): 100})
        assert read_day(final, ledger, clock()) == ledger.sent_in_hours(
            "billing", window_hours(clock())
        )
        last_read = clock()
        clock.now += HOUR_S / 2 + (60 if step % 2 else -30)
    assert final.hours_kept("billing")[0] == window_hours(last_read)[0]  # older ones dropped


def test_a_read_by_hour_sums_the_shards_of_each_hour_apart(
    ledger: Ledger, clock: ManualClock
) -> None:
    hour = hour_of(clock())
    ledger.add_send_counts({("billing", hour): 1, ("billing", hour - 2): 5}, shard=0)
    ledger.add_send_counts({("billing", hour): 2, ("shop", hour): 9}, shard=SHARDS - 1)
    assert ledger.sent_by_hour("billing", range(hour - 3, hour + 1)) == {hour: 3, hour - 2: 5}
    assert ledger.sent_by_hour("billing", range(hour, hour)) == {}


# -- the cache's rules -------------------------------------------------------------------

HOUR = 500_000
NOW = HOUR * HOUR_S + HOUR_S / 2


def day(hour: int = HOUR) -> range:
    return range(hour - WINDOW_HOURS + 1, hour + 1)


def test_an_hour_is_final_once_its_end_is_the_settle_margin_in_the_past() -> None:
    final = FinalHours[int](SETTLE_S)
    end = (HOUR + 1) * HOUR_S
    assert not final.is_final(HOUR, end + SETTLE_S - 0.001)
    assert final.is_final(HOUR, end + SETTLE_S)


def test_the_settle_margin_is_the_flush_interval_and_five_minutes() -> None:
    assert settle_margin_s(5.0) == 5.0 + SAFETY_MARGIN_S == 305.0


def test_the_margin_and_the_bound_the_docs_state_are_the_codes() -> None:
    scaling = " ".join((DOCS / "scaling.md").read_text().split())
    console = " ".join((DOCS / "console.md").read_text().split())
    margin = f"{settle_margin_s(FLUSH_INTERVAL_S):g} seconds ago"
    assert margin in scaling
    assert margin in console
    assert f"up to {DEFAULT_MAX_SERVICES} services" in scaling


def test_the_first_read_fetches_the_whole_window_in_one_call() -> None:
    fetch = Recording({HOUR - 24: 1, HOUR - 3: 2, HOUR: 4})
    assert FinalHours[int](SETTLE_S).read("billing", day(), NOW, fetch) == fetch.counts
    assert fetch.asked == [day()]


def test_later_reads_fetch_only_the_hours_not_final() -> None:
    fetch = Recording({HOUR - 24: 1, HOUR - 1: 2, HOUR: 4})
    final = FinalHours[int](SETTLE_S)
    final.read("billing", day(), NOW, fetch)
    fetch.counts[HOUR] = 10  # the current hour moved; the others cannot
    assert final.read("billing", day(), NOW + 5, fetch) == {HOUR - 24: 1, HOUR - 1: 2, HOUR: 10}
    assert fetch.asked[1:] == [range(HOUR, HOUR + 1)]


def test_within_the_margin_the_last_hour_is_fetched_again_too() -> None:
    fetch = Recording({HOUR - 1: 2})
    final = FinalHours[int](SETTLE_S)
    early = HOUR * HOUR_S + 10
    final.read("billing", day(), early, fetch)
    fetch.counts[HOUR - 1] = 3  # a flush of the last hour, late but within the margin
    assert final.read("billing", day(), early + 5, fetch) == {HOUR - 1: 3}
    assert fetch.asked[1:] == [range(HOUR - 1, HOUR + 1)]


def test_a_final_hour_without_a_counter_is_not_fetched_again() -> None:
    fetch = Recording({})
    final = FinalHours[int](SETTLE_S)
    final.read("billing", day(), NOW, fetch)
    assert final.read("billing", day(), NOW + 5, fetch) == {}
    assert fetch.asked[1:] == [range(HOUR, HOUR + 1)]
    assert len(final.hours_kept("billing")) == WINDOW_HOURS - 1


def test_hours_that_left_the_window_are_dropped() -> None:
    fetch = Recording({HOUR - 24: 1, HOUR - 23: 2})
    final = FinalHours[int](SETTLE_S)
    final.read("billing", day(), NOW, fetch)
    later = NOW + 2 * HOUR_S
    assert final.read("billing", day(HOUR + 2), later, fetch) == {}
    assert final.hours_kept("billing") == list(range(HOUR - 22, HOUR + 2))
    assert fetch.asked[1:] == [range(HOUR, HOUR + 3)]


def test_at_most_max_services_are_kept_the_least_recently_read_first_dropped() -> None:
    fetch = Recording({})
    final = FinalHours[int](SETTLE_S, max_services=2)
    for service_id in ("billing", "shop", "billing", "news"):
        final.read(service_id, day(), NOW, fetch)
    assert final.services() == 2
    assert final.hours_kept("shop") == []
    assert len(final.hours_kept("billing")) == len(final.hours_kept("news")) == WINDOW_HOURS - 1


def test_a_cache_of_no_services_is_refused() -> None:
    with pytest.raises(ValueError, match="max_services must be at least 1"):
        FinalHours[int](SETTLE_S, max_services=0)
