"""What one release of the GIL costs a busy thread pool, on this machine.

    .venv/bin/python bench/gil_release_cost.py [--threads 32] [--requests 6000] [--extra 10]

No stack: ``--threads`` threads take ``--requests`` synthetic requests from a shared counter,
each made of 0.6 ms of Python work and 8 ms of waiting (``time.sleep``, standing for SES and
Pub/Sub), about the shape of the worker's handling of one request. The run is repeated with
``--extra`` more calls per request that release and retake the GIL (each followed by 20 us of
Python work), for three such calls: ``time.sleep(0)``, a 200-byte ``os.write`` to /dev/null
(a log line) and SHA-256 over 3,000 bytes (hashlib lets the GIL go above 2 KiB). Printed per
request: the process's CPU, its context switches, and what each extra call cost beyond its own
work. With many threads holding or wanting the GIL, every release is a hand-over to another
thread and back, and that, not the call, is what it costs; docs/scaling.md uses the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable

WORK_S = 0.0006
WAIT_S = 0.008
BETWEEN_S = 0.00002
DATA = b"x" * 3000
LINE = b"y" * 199 + b"\n"


def spin(seconds: float) -> None:
    """Python work for ``seconds`` (holding the GIL, apart from forced switches)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def run(threads: int, requests: int, extra: int, call: Callable[[], object]) -> tuple[float, float]:
    """CPU ms and context switches per request for one run."""
    counter = itertools.count()

    def serve() -> None:
        while next(counter) < requests:
            spin(WORK_S / 2)
            for _ in range(extra):
                call()
                spin(BETWEEN_S)
            time.sleep(WAIT_S / 2)
            spin(WORK_S / 2)
            time.sleep(WAIT_S / 2)

    pool = [threading.Thread(target=serve) for _ in range(threads)]
    before, cpu_before = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    after, cpu_after = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
    switches = (after.ru_nvcsw + after.ru_nivcsw) - (before.ru_nvcsw + before.ru_nivcsw)
    return (cpu_after - cpu_before) * 1000 / requests, switches / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--extra", type=int, default=10, help="extra GIL releases per request")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    null = os.open(os.devnull, os.O_WRONLY)
    calls: dict[str, Callable[[], object]] = {
        "time.sleep(0)": lambda: time.sleep(0),
        "os.write, 200 bytes": lambda: os.write(null, LINE),
        "sha256, 3000 bytes": lambda: hashlib.sha256(DATA).digest(),
    }
    # What each call costs alone, single-threaded: subtracted below to leave the hand-over.
    alone: dict[str, float] = {}
    for name, call in calls.items():
        started = time.process_time()
        for _ in range(20000):
            call()
        alone[name] = (time.process_time() - started) * 1000 / 20000
    print(f"{args.threads} threads, {args.requests} requests, median of {args.repeats} runs")
    nothing = calls["time.sleep(0)"]  # not called: no extra calls
    base = [run(args.threads, args.requests, 0, nothing) for _ in range(args.repeats)]
    base_cpu = statistics.median(cpu for cpu, _ in base)
    base_switches = statistics.median(switches for _, switches in base)
    print(f"  {'no extra call':22} {base_cpu:6.3f} CPU ms/request  {base_switches:5.1f} switches")
    for name, call in calls.items():
        runs = [run(args.threads, args.requests, args.extra, call) for _ in range(args.repeats)]
        cpu = statistics.median(c for c, _ in runs)
        switches = statistics.median(s for _, s in runs)
        # Beyond the call itself and the 20 us of work after it.
        each_us = ((cpu - base_cpu) / args.extra - alone[name] - BETWEEN_S * 1000) * 1000
        print(
            f"  {args.extra} x {name:18} {cpu:6.3f} CPU ms/request  {switches:5.1f} switches"
            f"  {each_us:5.1f} us each beyond the call ({alone[name] * 1000:.1f} us alone)"
        )
    os.close(null)


if __name__ == "__main__":
    main()
