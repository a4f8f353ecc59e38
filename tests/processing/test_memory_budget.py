"""The attachment memory budget: a semaphore of bytes shared by every sending thread."""

from __future__ import annotations

import threading
import time

from tests.support.clock import ManualClock
from worker.processing.memory_budget import MemoryBudget


def test_sends_within_the_budget_do_not_wait() -> None:
    budget = MemoryBudget(100)
    assert budget.acquire(60, timeout_s=0)
    assert budget.acquire(40, timeout_s=0)
    assert budget.in_use_bytes == 100


def test_a_send_beyond_the_budget_waits_until_another_gives_its_bytes_back() -> None:
    budget = MemoryBudget(100)
    budget.acquire(70, timeout_s=0)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(budget.acquire(50, timeout_s=30)))
    waiter.start()
    time.sleep(0.2)
    assert got == []  # still waiting: 70 + 50 > 100
    budget.release(70)
    waiter.join(timeout=10)
    assert got == [True]
    assert budget.in_use_bytes == 50


def test_concurrent_sends_never_hold_more_than_the_budget() -> None:
    budget = MemoryBudget(30)
    peak = 0
    lock = threading.Lock()

    def send() -> None:
        nonlocal peak
        assert budget.acquire(10, timeout_s=30)
        with lock:
            peak = max(peak, budget.in_use_bytes)
        time.sleep(0.02)
        budget.release(10)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert peak == 30
    assert budget.in_use_bytes == 0


def test_a_wait_longer_than_its_timeout_gives_up_without_taking_anything() -> None:
    clock = ManualClock(0.0)
    budget = MemoryBudget(10, clock=clock)
    budget.acquire(10, timeout_s=0)
    assert not budget.acquire(1, timeout_s=0)
    assert budget.in_use_bytes == 10


def test_a_send_larger_than_the_whole_budget_runs_alone() -> None:
    budget = MemoryBudget(10)
    assert budget.acquire(25, timeout_s=0)
    assert not budget.acquire(1, timeout_s=0)
    budget.release(25)
    assert budget.in_use_bytes == 0
