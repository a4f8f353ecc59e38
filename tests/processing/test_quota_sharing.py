"""Instances sharing one SES account, simulated on a clock the test moves: the real pacers,
send-rate limiters and ledger heartbeats, and the SES stand-in's token bucket
(bench/ses_quota.py) answering as SES does. Every instance with a backlog sends whenever its
limiter lets it; a quiet one sends nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from bench.ses_quota import SesQuota
from tests.support.clock import ManualClock
from worker.ledger import MemoryLedger
from worker.processing.quota_pacer import TICK_S, PacerTerms, QuotaPacer
from worker.processing.send_rate import SendRateLimiter
from worker.sending.quota import QuotaGroup, SendQuota

pytestmark = pytest.mark.unit

RATE = 200.0
FRACTION = 0.98
STEP_S = 0.01
GROUP = QuotaGroup("123456789012", "eu-west-2")

#: Whether instance ``n`` has a backlog at ``t`` seconds.
Busy = Callable[[int, float], bool]


class Account:
    """Four instances on one account, stepped together."""

    def __init__(self, instances: int = 4) -> None:
        self.clock = ManualClock()
        self.ses = SesQuota(RATE, clock=self.clock, day_clock=self.clock)
        ledger = MemoryLedger(claim_lease_s=30, clock=lambda: 1_800_000_000.0 + self.clock.now)
        self.pacers = [
            QuotaPacer(
                SendRateLimiter(1, clock=self.clock),
                self.sources,
                ledger=ledger,
                instance=f"worker-{n}",
                terms=PacerTerms(fraction=FRACTION),
                clock=self.clock,
            )
            for n in range(instances)
        ]
        self.sent = [0] * instances

    def sources(self) -> Mapping[QuotaGroup, Callable[[], SendQuota]]:
        def read() -> SendQuota:
            return SendQuota(self.ses.rate_per_s, None, 0)

        return {GROUP: read}

    def run(self, busy: Busy, until_s: float) -> None:
        """Step to ``until_s``: the pacers tick every TICK_S, busy instances send."""
        ticks_every = round(TICK_S / STEP_S)
        step = round(self.clock.now / STEP_S)
        while self.clock.now < until_s:
            step += 1
            self.clock.now = step * STEP_S
            for number, pacer in enumerate(self.pacers):
                if step % ticks_every == 0:
                    pacer.tick()
                if busy(number, self.clock.now):
                    self.send_what_the_limiter_allows(number, pacer)

    def send_what_the_limiter_allows(self, number: int, pacer: QuotaPacer) -> None:
        while (ticket := pacer.limiter.request(1, max_wait_s=0.0)) is not None:
            assert ticket.granted
            if self.ses.admit(1) is None:
                self.sent[number] += 1
            else:
                pacer.throttled()

    def accepted_per_s(self, start_s: int, end_s: int) -> float:
        return sum(self.ses.accepted_by_second[s] for s in range(start_s, end_s)) / (
            end_s - start_s
        )

    def throttled(self, start_s: int, end_s: int) -> int:
        return sum(self.ses.throttled_by_second[s] for s in range(start_s, end_s))


def always(number: int, at_s: float) -> bool:
    return True


def test_busy_instances_together_send_the_fraction_of_the_rate_without_throttling() -> None:
    account = Account()
    account.run(always, until_s=60)
    assert account.accepted_per_s(15, 60) == pytest.approx(FRACTION * RATE, rel=0.01)
    assert account.throttled(15, 60) == 0


def test_an_instance_quiet_a_while_is_back_to_an_equal_share_with_few_calls_throttled() -> None:
    account = Account()

    def first_quiet_for_a_while(number: int, at_s: float) -> bool:
        return number != 0 or not 20 <= at_s < 40

    account.run(first_quiet_for_a_while, until_s=40)
    before = list(account.sent)
    account.run(first_quiet_for_a_while, until_s=70)
    settled = [pacer.rate_per_s for pacer in account.pacers]
    assert settled == [pytest.approx(FRACTION * RATE / 4, rel=0.02)] * 4
    assert account.sent[0] - before[0] >= 0.8 * FRACTION * RATE / 4 * 30
    assert account.throttled(40, 70) <= 0.01 * RATE * 30
    assert account.accepted_per_s(52, 70) >= 0.95 * RATE
