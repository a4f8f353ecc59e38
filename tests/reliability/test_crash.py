"""The worker SIGKILLed twice mid-run under throttling: nothing lost, nothing falsely sent.

2,000 requests, every 10th SES send answered with a throttling error by the fault proxy, and
``email-worker pull`` killed with SIGKILL (no shutdown code runs) twice and restarted. Pub/Sub
delivers again what a killed worker held unsettled once its lease runs out. The worker reaches
the emulator through ``TcpRelay(end_streams=True)``, which ends a dead worker's streams as the
real service does (the emulator alone keeps feeding them; see the relay).

The request ledger (SQLite, shared by the killed worker and its successor) decides what a
redelivery does: a request whose result was stored is not sent again, and one whose claim
the killed worker left is taken over once the claim expires and sent again. So a request can
be sent twice only if the kill caught it between its claim and its stored result: its SES call
was in flight. The test sorts every duplicate send into "SES call in flight at the kill"
(the first send by the killed worker, the second by a takeover of its claim) and "other",
which must be none.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.support import fault_proxy as faults
from tests.support.tcp_relay import TcpRelay
from tests.support.worker_process import ResultCollector, WorkerProcess
from tests.support.worker_stack import Stack, make_stack, request
from worker.ledger import LedgerKey, SqliteLedger

TOTAL = 2000
MAX_MESSAGES = 64  # flow control: at most this many requests are held by one worker
CONCURRENCY = 32  # the worker's threads: at most this many SES calls are in flight at a kill
KILL_AFTER = (TOTAL // 3, 2 * TOTAL // 3)  # results seen before each SIGKILL
RESTART_AFTER_S = 2.0
WINDOW = 200  # requests published but without a result, at most
_SUBJECT = re.compile(rb"^Subject: crash (\S+)\r?$", re.MULTILINE)


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def request_id_of_send(body: bytes) -> str | None:
    try:
        raw = base64.b64decode(json.loads(body)["Content"]["Raw"]["Data"])
    except (ValueError, KeyError, TypeError):
        return None
    match = _SUBJECT.search(raw)
    return match.group(1).decode() if match else None


class Feeder:
    """Publishes the requests in a background thread, keeping at most ``window`` of them
    waiting for a result.

    The real Pub/Sub keeps a backlog on the server and hands a subscriber only as many
    messages as its flow control asks for. The emulator ignores that and streams the whole
    backlog into the client, where messages wait unleased in gRPC's buffers and expire; a
    bounded backlog keeps this test about the worker, not about that emulator artefact.
    """

    def __init__(
        self, stack: Stack, collector: ResultCollector, request_ids: list[str], window: int
    ) -> None:
        self._stack, self._collector = stack, collector
        self._pending, self._window = list(request_ids), window
        self._published = 0
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        publisher = self._stack.emulator.publisher
        while self._pending:
            room = self._window - (self._published - len(self._collector.request_ids()))
            if room <= 0:
                time.sleep(0.05)
                continue
            batch, self._pending = self._pending[:room], self._pending[room:]
            futures = [
                publisher.publish(
                    self._stack.queue.topic,
                    json.dumps(request(request_id=r, subject=f"crash {r}")).encode(),
                )
                for r in batch
            ]
            for future in futures:
                future.result(timeout=60)
            self._published += len(batch)

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the feeder did not finish publishing"


def wait_until_quiet(collector: ResultCollector, quiet_s: float, timeout_s: float) -> None:
    """Until no new result has arrived for ``quiet_s`` (late duplicates included)."""
    deadline = time.monotonic() + timeout_s
    seen, since = len(collector.snapshot()), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now_seen = len(collector.snapshot())
        if now_seen != seen:
            seen, since = now_seen, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return


def test_two_sigkills_under_throttling_lose_nothing_and_duplicate_only_in_flight_requests(
    stack: Stack, moto: Any, fault_proxy: Any, tmp_path: Path
) -> None:
    fault_proxy.add_rule(faults.fail_every(10, faults.ses_error("TooManyRequestsException", 429)))
    request_ids = [f"crash-{n}" for n in range(TOTAL)]
    relay = TcpRelay(stack.emulator.port, end_streams=True)
    env = {
        **stack.env,
        "EMAIL_WORKER_MAX_MESSAGES": str(MAX_MESSAGES),
        "EMAIL_WORKER_CONCURRENCY": str(CONCURRENCY),
        "PUBSUB_EMULATOR_HOST": relay.host,
    }
    started = time.monotonic()
    marks: list[int] = []  # proxy log length when each killed worker was surely gone
    with relay, ResultCollector(stack.emulator, stack.results_subscription) as collector:
        feeder = Feeder(stack, collector, request_ids, window=WINDOW)
        worker = WorkerProcess(env, tmp_path / "worker-1.log")
        for n, results_before_kill in enumerate(KILL_AFTER, start=2):
            collector.wait_for_count(results_before_kill, timeout_s=180)
            assert worker.running, worker.log()[-3000:]
            worker.kill()
            # Let the proxy finish recording what the dead worker had sent.
            time.sleep(RESTART_AFTER_S)
            marks.append(len(fault_proxy.requests))
            worker = WorkerProcess(env, tmp_path / f"worker-{n}.log")
        feeder.join(timeout_s=360)
        # A killed worker's unfinished claims are taken over only once they expire (90 s).
        collector.wait_for_requests(set(request_ids), timeout_s=360)
        wait_until_quiet(collector, quiet_s=3.0, timeout_s=60)
        assert worker.terminate() == 0, worker.log()[-3000:]
        results = collector.snapshot()
    elapsed = time.monotonic() - started

    # Every request ends with a terminal result, and it is "sent" (throttling is transient).
    by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        by_request[result["request_id"]].append(result)
    assert set(by_request) == set(request_ids)
    assert all(any(r["status"] == "sent" for r in rs) for rs in by_request.values())
    assert {r["status"] for r in results} == {"sent"}

    # Nothing reported sent that SES did not receive.
    reached_ses = {m.message_id for m in moto.sent_messages()}
    reported = {mid for r in results for mid in r["message_ids"]}
    assert reported <= reached_ses

    # Sends per request, in the order the proxy forwarded them to SES (moto). A send cut off
    # by a kill mid-request reaches moto incomplete, is refused there, and has no request id.
    sends: dict[str, list[int]] = defaultdict(list)
    for index, logged in enumerate(fault_proxy.requests):
        if logged.kind == "ses_send" and logged.outcome == "forwarded":
            request_id = request_id_of_send(logged.request.body)
            if request_id is not None:
                sends[request_id].append(index)
    assert sum(len(s) for s in sends.values()) == len(reached_ses)
    assert set(sends) == set(request_ids)
    duplicates = {r: s for r, s in sends.items() if len(s) > 1}
    # A repeat is "in flight at a kill" when the killed worker made the earlier send and the
    # later one came from a takeover of the claim it left: the ledger counted the takeover.
    ledger_path = Path(stack.env["EMAIL_WORKER_LEDGER"].removeprefix("sqlite:///"))
    in_flight_at_kill: Counter[int] = Counter()
    other: list[str] = []
    with SqliteLedger(ledger_path, claim_lease_s=90) as ledger:
        for request_id, indexes in duplicates.items():
            record = ledger.get(LedgerKey("billing", request_id))
            takeovers = record.takeovers if record is not None else 0
            for before, after in itertools.pairwise(indexes):
                kill = next((k for k, mark in enumerate(marks) if before < mark <= after), None)
                if kill is None or takeovers < 1:
                    other.append(request_id)
                else:
                    in_flight_at_kill[kill] += 1
    assert other == [], f"sent twice without a kill during their SES call: {other[:10]}"
    # Only calls in progress can be caught: at most one per worker thread per kill.
    assert all(count <= CONCURRENCY for count in in_flight_at_kill.values())
    duplicate_results = sum(len(rs) - 1 for rs in by_request.values())

    throttled = fault_proxy.count("ses_send", "injected")
    print(
        f"\ncrash test: {TOTAL} requests in {elapsed:.0f}s, 2 SIGKILLs; "
        f"{throttled} SES sends throttled; {len(reached_ses)} emails reached SES; "
        f"requests sent more than once: {len(duplicates)}, of which SES call in flight at "
        f"the kill: {sum(in_flight_at_kill.values())} (by kill: "
        f"{dict(sorted(in_flight_at_kill.items()))}), other: {len(other)}; "
        f"duplicate results: {duplicate_results}; lost: 0"
    )
    assert throttled >= TOTAL // 10
