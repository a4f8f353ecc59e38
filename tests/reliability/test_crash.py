"""The worker SIGKILLed twice mid-run under throttling: nothing lost, nothing sent twice.

2,000 requests, every 10th SES send answered with a throttling error by the fault proxy, and
``email-worker pull`` killed with SIGKILL (no shutdown code runs) twice and restarted. Pub/Sub
delivers again what a killed worker held unsettled once its lease runs out. The worker reaches
the emulator through ``TcpRelay(end_streams=True)``, which ends a dead worker's streams as the
real service does (the emulator alone keeps feeding them; see the relay).

The request ledger (SQLite, shared by the killed worker, its successor and the events reader)
decides what a redelivery does: a request whose result was stored is not sent again, and one
whose claim the killed worker left is taken over once the claim has expired and
EMAIL_WORKER_SEND_EVENT_WAIT_S has passed. A kill can catch a request between its claim and
its stored result, with its SES call in flight. SES's Send event settles that: the fault
proxy plays SES's part and puts a Send event, tagged as the send was, on moto's EventBridge
bus for every send moto accepted; the rule routes it to SQS, the events reader records it in
the ledger, and the takeover finds it and reports the request sent instead of sending it again.
So no request may reach SES twice.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.events.conftest import EVENTS_ROLE
from tests.support import fault_proxy as faults
from tests.support.ses_events import create_ses_events_queue, send_events_on
from tests.support.tcp_relay import TcpRelay
from tests.support.worker_process import ResultCollector, WorkerProcess
from tests.support.worker_stack import Stack, make_stack, request
from worker.events import EventsReader, sqs_client
from worker.ledger import LedgerKey, SqliteLedger

TOTAL = 2000
MAX_MESSAGES = 64  # flow control: at most this many requests are held by one worker
CONCURRENCY = 32  # the worker's threads: at most this many SES calls are in flight at a kill
KILL_AFTER = (TOTAL // 3, 2 * TOTAL // 3)  # results seen before each SIGKILL
RESTART_AFTER_S = 2.0
SEND_EVENT_WAIT_S = 5.0  # SES's events take a second or two to reach the ledger here
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


def test_two_sigkills_under_throttling_lose_nothing_and_send_nothing_twice(
    stack: Stack,
    moto: Any,
    fault_proxy: Any,
    tmp_path: Path,
    clean_metadata: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fault_proxy.add_rule(faults.fail_every(10, faults.ses_error("TooManyRequestsException", 429)))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto.endpoint)
    ses_events = create_ses_events_queue(moto)
    fault_proxy.add_rewriter(send_events_on(ses_events))
    ledger_path = Path(stack.env["EMAIL_WORKER_LEDGER"].removeprefix("sqlite:///"))
    events_topic = stack.emulator.create_topic()
    request_ids = [f"crash-{n}" for n in range(TOTAL)]
    relay = TcpRelay(stack.emulator.port, end_streams=True)
    env = {
        **stack.env,
        "EMAIL_WORKER_MAX_MESSAGES": str(MAX_MESSAGES),
        "EMAIL_WORKER_CONCURRENCY": str(CONCURRENCY),
        "EMAIL_WORKER_SEND_EVENT_WAIT_S": str(SEND_EVENT_WAIT_S),
        "PUBSUB_EMULATOR_HOST": relay.host,
    }
    started = time.monotonic()
    with (
        SqliteLedger(ledger_path, claim_lease_s=90) as events_ledger,
        relay,
        ResultCollector(stack.emulator, stack.results_subscription) as collector,
    ):
        reader = EventsReader(
            sqs_client(role_arn=EVENTS_ROLE, queue_url=ses_events.url),
            queue_url=ses_events.url,
            topic=events_topic,
            publish=lambda topic, data, attributes: stack.emulator.publisher.publish(
                topic, data, **attributes
            ),
            ledger=events_ledger,
            wait_time_s=1,
        )
        reading = threading.Thread(target=reader.run, name="events-reader", daemon=True)
        reading.start()
        feeder = Feeder(stack, collector, request_ids, window=WINDOW)
        worker = WorkerProcess(env, tmp_path / "worker-1.log")
        for n, results_before_kill in enumerate(KILL_AFTER, start=2):
            collector.wait_for_count(results_before_kill, timeout_s=180)
            assert worker.running, worker.log()[-3000:]
            worker.kill()
            time.sleep(RESTART_AFTER_S)
            worker = WorkerProcess(env, tmp_path / f"worker-{n}.log")
        feeder.join(timeout_s=360)
        # A killed worker's unfinished claims are taken over only once they expire (90 s).
        collector.wait_for_requests(set(request_ids), timeout_s=360)
        wait_until_quiet(collector, quiet_s=3.0, timeout_s=60)
        assert worker.terminate() == 0, worker.log()[-3000:]
        reader.stop()
        reading.join(timeout=30)
        results = collector.snapshot()
    elapsed = time.monotonic() - started

    # Every request ends with a terminal result, and it is "sent" (throttling is transient).
    by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        by_request[result["request_id"]].append(result)
    assert set(by_request) == set(request_ids)
    assert {r["status"] for r in results} == {"sent"}

    # Nothing reported sent that SES did not receive.
    reached_ses = {m.message_id for m in moto.sent_messages()}
    reported = {mid for r in results for mid in r["message_ids"]}
    assert reported <= reached_ses

    # Sends per request, as the proxy forwarded them to SES (moto). A send cut off by a kill
    # mid-request reaches moto incomplete, is refused there, and has no request id.
    sends: Counter[str] = Counter()
    for logged in fault_proxy.requests:
        if logged.kind == "ses_send" and logged.outcome == "forwarded":
            request_id = request_id_of_send(logged.request.body)
            if request_id is not None:
                sends[request_id] += 1
    assert sum(sends.values()) == len(reached_ses)
    assert set(sends) == set(request_ids)
    duplicates = {r: n for r, n in sends.items() if n > 1}
    assert duplicates == {}, f"sent more than once: {sorted(duplicates)[:10]}"

    with SqliteLedger(ledger_path, claim_lease_s=90) as ledger:
        taken_over = [
            r
            for r in request_ids
            if (record := ledger.get(LedgerKey("billing", r))) is not None and record.takeovers
        ]
    # The takeovers that found SES's Send event (the kill caught their SES call) and so
    # reported the request sent without sending it again.
    settled = sum(
        log.read_text().count("settled from SES's events") for log in tmp_path.glob("worker-*.log")
    )
    duplicate_results = sum(len(rs) - 1 for rs in by_request.values())
    throttled = fault_proxy.count("ses_send", "injected")
    print(
        f"\ncrash test: {TOTAL} requests in {elapsed:.0f}s, 2 SIGKILLs; "
        f"{throttled} SES sends throttled; {len(reached_ses)} emails reached SES; "
        f"claims taken over after the kills: {len(taken_over)} (of which settled from SES's "
        f"Send events, not sent again: {settled}); sent twice: 0; "
        f"duplicate results: {duplicate_results}; lost: 0"
    )
    assert throttled >= TOTAL // 10
