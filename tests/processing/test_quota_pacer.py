"""The quota pacer: the share of SES's rate, AIMD on throttling, the upper bound and the daily
cap, on a clock the test moves and a quota the test sets."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import pytest

from tests.support.clock import ManualClock
from worker.ledger import Ledger, LedgerUnavailable, MemoryLedger
from worker.processing.quota_pacer import (
    CUT_COOLDOWN_S,
    DECREASE,
    INCREASE_PER_S,
    UNLIMITED_PER_S,
    PacerTerms,
    QuotaPacer,
)
from worker.processing.send_rate import SendRateLimiter
from worker.sending.errors import AccessDeniedError
from worker.sending.quota import QuotaGroup, SendQuota

GROUP = QuotaGroup("123456789012", "eu-west-2")


class Account:
    """An SES account whose quota the test changes."""

    def __init__(self, rate: float = 200, daily: float | None = None, sent: float = 0) -> None:
        self.quota = SendQuota(rate, daily, sent)
        self.reads = 0
        self.failing = False

    def read(self) -> SendQuota:
        self.reads += 1
        if self.failing:
            raise AccessDeniedError("not allowed ses:GetAccount")
        return self.quota

    def sources(self) -> Mapping[QuotaGroup, Callable[[], SendQuota]]:
        return {GROUP: self.read}


def pacer(
    account: Account,
    clock: ManualClock,
    *,
    ledger: Ledger | None = None,
    instance: str = "a",
    **terms: float | None,
) -> QuotaPacer:
    limiter = SendRateLimiter(1, clock=clock)
    settings = PacerTerms(**{"fraction": 1.0, **terms})  # type: ignore[arg-type]
    return QuotaPacer(
        limiter, account.sources, ledger=ledger, instance=instance, terms=settings, clock=clock
    )


def shared_ledger(clock: ManualClock) -> MemoryLedger:
    return MemoryLedger(claim_lease_s=30, clock=lambda: 1_800_000_000.0 + clock.now)


def test_alone_an_instance_paces_at_the_accounts_max_send_rate() -> None:
    clock = ManualClock()
    alone = pacer(Account(rate=200), clock)
    alone.tick()
    assert alone.rate_per_s == 200


def test_the_share_keeps_the_fraction_of_the_rate_it_is_told_to_leave_unused() -> None:
    clock = ManualClock()
    careful = pacer(Account(rate=200), clock, fraction=0.98)
    careful.tick()
    assert careful.rate_per_s == pytest.approx(196)


def test_live_instances_split_the_rate_between_them() -> None:
    clock = ManualClock()
    account, ledger = Account(rate=200), shared_ledger(clock)
    pacers = [pacer(account, clock, ledger=ledger, instance=name) for name in "abcd"]
    for each in pacers:
        each.tick()
    clock.now += 5  # the next count sees all four
    for each in pacers:
        each.tick()
    assert [each.rate_per_s for each in pacers] == [50] * 4


def test_an_instance_that_stops_beating_leaves_its_share_to_the_others() -> None:
    clock = ManualClock()
    account, ledger = Account(rate=300), shared_ledger(clock)
    a, b, c = (pacer(account, clock, ledger=ledger, instance=name) for name in "abc")
    for second in range(0, 30, 5):
        clock.now = second
        a.tick()
        b.tick()
        if second < 5:
            c.tick()  # c is killed after its first heartbeat
    assert a.rate_per_s == b.rate_per_s == 150  # c's heartbeat expired after 15 s


def test_an_instance_that_stops_cleanly_leaves_its_share_at_the_others_next_count() -> None:
    clock = ManualClock()
    account, ledger = Account(rate=200), shared_ledger(clock)
    a, b = (
        pacer(account, clock, ledger=ledger, instance="a"),
        pacer(account, clock, ledger=ledger, instance="b"),
    )
    a.tick()
    b.tick()
    clock.now += 5
    a.tick()
    assert a.rate_per_s == 100
    b.stop()
    clock.now += 5
    a.tick()
    assert a.rate_per_s == 200


def test_a_throttled_answer_cuts_the_rate_multiplicatively() -> None:
    clock = ManualClock()
    paced = pacer(Account(rate=100), clock)
    paced.tick()
    paced.throttled()
    assert paced.rate_per_s == pytest.approx(100 * DECREASE)


def test_throttled_answers_within_one_episode_cut_once() -> None:
    clock = ManualClock()
    paced = pacer(Account(rate=100), clock)
    paced.tick()
    for _ in range(10):  # the calls that were in flight together
        paced.throttled()
    assert paced.rate_per_s == pytest.approx(100 * DECREASE)
    clock.now += CUT_COOLDOWN_S
    paced.throttled()
    assert paced.factor == pytest.approx(DECREASE**2)  # a later episode cuts again


def test_after_a_cut_the_rate_grows_back_additively_to_the_share() -> None:
    clock = ManualClock()
    paced = pacer(Account(rate=100), clock)
    paced.tick()
    paced.throttled()
    rates = []
    for _ in range(8):
        clock.now += 1
        paced.tick()
        rates.append(paced.rate_per_s or 0.0)
    steps = [later - earlier for earlier, later in itertools.pairwise(rates)]
    assert steps[:4] == pytest.approx([100 * INCREASE_PER_S] * 4)
    assert rates[-1] == 100  # back to the share, and no further


def test_aimd_settles_below_a_rate_that_ses_enforces_below_the_quota() -> None:
    # GetAccount says 100/s, but SES throttles above 60/s (another sender shares the account).
    clock = ManualClock()
    paced = pacer(Account(rate=100), clock)
    paced.tick()
    rates = []
    for _ in range(600):  # a minute in tenths of a second
        clock.now += 0.1
        paced.tick()
        rate = paced.rate_per_s
        assert rate is not None
        if rate > 60:
            paced.throttled()
        rates.append(paced.rate_per_s or 0)
    last_half = rates[300:]
    assert max(last_half) <= 60 + 100 * INCREASE_PER_S * CUT_COOLDOWN_S
    assert sum(last_half) / len(last_half) >= 60 * (1 + DECREASE) / 2 * 0.95


def test_a_new_quota_applies_in_full_at_the_next_read() -> None:
    clock = ManualClock()
    account = Account(rate=100)
    paced = pacer(account, clock, refresh_s=10)
    paced.tick()
    paced.throttled()  # SES lowered the rate: throttled before the read tells
    account.quota = SendQuota(300, None, 0)
    clock.now += 5
    paced.tick()
    assert paced.rate_per_s == pytest.approx((DECREASE + 5 * INCREASE_PER_S) * 100)  # unread
    clock.now += 5
    paced.tick()
    assert paced.rate_per_s == 300  # and the cut is forgotten


def test_the_upper_bound_caps_the_share() -> None:
    clock = ManualClock()
    capped = pacer(Account(rate=200), clock, upper_bound_per_s=20)
    capped.tick()
    assert capped.rate_per_s == 20


def test_a_share_below_the_upper_bound_is_kept() -> None:
    clock = ManualClock()
    paced = pacer(Account(rate=10), clock, upper_bound_per_s=20)
    paced.tick()
    assert paced.rate_per_s == 10


def test_without_a_readable_quota_the_upper_bound_alone_paces() -> None:
    clock = ManualClock()
    account = Account()
    account.failing = True
    paced = pacer(account, clock, upper_bound_per_s=20)
    paced.tick()
    assert paced.rate_per_s == 20


def test_without_a_readable_quota_or_an_upper_bound_nothing_paces() -> None:
    clock = ManualClock()
    account = Account()
    account.failing = True
    paced = pacer(account, clock)
    paced.tick()
    assert paced.rate_per_s == UNLIMITED_PER_S


def test_a_failed_quota_read_keeps_the_last_known_quota() -> None:
    clock = ManualClock()
    account = Account(rate=50)
    paced = pacer(account, clock, refresh_s=10)
    paced.tick()
    account.failing = True
    clock.now += 10
    paced.tick()
    assert account.reads == 2
    assert paced.rate_per_s == 50


def test_an_unreachable_ledger_keeps_the_last_instance_count() -> None:
    clock = ManualClock()
    account, ledger = Account(rate=200), shared_ledger(clock)
    a, b = (pacer(account, clock, ledger=ledger, instance=name) for name in "ab")
    a.tick()
    b.tick()
    clock.now += 5
    a.tick()

    def unavailable(*args: object, **kwargs: object) -> None:
        raise LedgerUnavailable("down")

    ledger.beat = unavailable  # type: ignore[method-assign,assignment]
    clock.now += 30
    a.tick()
    assert a.rate_per_s == 100


def test_the_daily_cap_holds_once_the_last_24_hours_reach_the_quota() -> None:
    clock = ManualClock()
    paced = pacer(Account(daily=1000, sent=999), clock)
    paced.tick()
    assert not paced.daily_cap_reached()
    paced.sent(1)
    assert paced.daily_cap_reached()


def test_sends_since_the_read_count_for_every_live_instance() -> None:
    clock = ManualClock()
    account, ledger = Account(daily=1000, sent=900), shared_ledger(clock)
    a, b = (pacer(account, clock, ledger=ledger, instance=name) for name in "ab")
    a.tick()
    b.tick()
    clock.now += 5
    a.tick()
    a.sent(50)  # b is taken to have sent as much meanwhile
    assert a.daily_cap_reached()


def test_the_daily_cap_lifts_when_a_read_shows_room_again() -> None:
    clock = ManualClock()
    account = Account(daily=1000, sent=1000)
    paced = pacer(account, clock, refresh_s=10)
    paced.tick()
    assert paced.daily_cap_reached()
    assert paced.seconds_until_recheck() == 10
    account.quota = SendQuota(200, 1000, 400)  # yesterday's sends left the window
    clock.now += 10
    paced.tick()
    assert not paced.daily_cap_reached()


def test_ses_saying_the_daily_quota_is_used_up_holds_until_the_next_read() -> None:
    clock = ManualClock()
    paced = pacer(Account(daily=1000, sent=10), clock, refresh_s=10)
    paced.tick()
    paced.daily_quota_exceeded()
    assert paced.daily_cap_reached()
    clock.now += 10
    paced.tick()
    assert not paced.daily_cap_reached()


def test_an_account_without_a_daily_limit_is_never_capped() -> None:
    clock = ManualClock()
    paced = pacer(Account(daily=None, sent=10**9), clock)
    paced.tick()
    paced.sent(10**6)
    assert not paced.daily_cap_reached()


def test_a_new_instance_count_applies_in_full_and_forgets_the_cuts_before_it() -> None:
    clock = ManualClock()
    account, ledger = Account(rate=200), shared_ledger(clock)
    a, b = (pacer(account, clock, ledger=ledger, instance=name) for name in "ab")
    a.tick()  # a counts itself alone: 200/s, and SES throttles once b starts too
    b.tick()
    a.throttled()
    clock.now += 5
    a.tick()
    assert a.rate_per_s == 100


def test_throttled_answers_just_after_a_new_share_are_the_old_shares_and_cut_nothing() -> None:
    clock = ManualClock()
    account = Account(rate=100)
    paced = pacer(account, clock, refresh_s=10)
    paced.tick()
    account.quota = SendQuota(50, None, 0)
    clock.now += 10
    paced.tick()
    paced.throttled()  # a call sent at 100/s, answered after the read
    assert paced.rate_per_s == 50
    clock.now += 2 * CUT_COOLDOWN_S
    paced.throttled()
    assert paced.rate_per_s == pytest.approx(50 * DECREASE)
