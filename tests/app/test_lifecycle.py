"""The lifecycle every long-running command shares (worker/app/lifecycle.py), on stand-ins for
the main loop, the HTTP server and the clients, in this process: signals sent to it reach the
lifecycle's handlers in the main thread, as they would in ``email-worker pull``."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest
import structlog

from worker.app.lifecycle import _stop_signals_call, _StopOnce, run_until_signalled
from worker.config.logs import configure_logging


class Left(Exception):
    """Raised by the stand-in for ``os._exit``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def leave(code: int) -> NoReturn:
    raise Left(code)


class Loop:
    """A main loop that sends the given signals to its own process, then works until stopped
    (or, ``ignores_stop``, until released) and returns ``code``."""

    def __init__(
        self,
        calls: list[str],
        *,
        signals: tuple[signal.Signals, ...] = (signal.SIGTERM,),
        code: int = 0,
        ignores_stop: bool = False,
        abandoned: int = 0,
    ) -> None:
        self.calls = calls
        self.signals = signals
        self.code = code
        self.ignores_stop = ignores_stop
        self.abandoned = abandoned
        self.stopped = threading.Event()
        self.released = threading.Event()
        self.stops = 0

    def stop(self) -> None:
        self.stops += 1
        self.calls.append("loop.stop")
        self.stopped.set()

    def run(self) -> int:
        self.calls.append("loop.run")
        for sig in self.signals:
            os.kill(os.getpid(), sig)
            time.sleep(0.2)  # let the main thread handle it: one kind pending twice is one
        (self.released if self.ignores_stop else self.stopped).wait(10)
        self.calls.append("loop.returned")
        return self.code


class Clients:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def close(self, *, ledger: bool = True) -> None:
        self.calls.append(f"clients.close(ledger={ledger})")


class Http:
    def __init__(self, calls: list[str], *, fails: bool = False) -> None:
        self.calls = calls
        self.fails = fails

    def start(self) -> Http:
        self.calls.append("http.start")
        if self.fails:
            raise RuntimeError("cannot serve HTTP on 127.0.0.1:1")
        return self

    def stop(self) -> None:
        self.calls.append("http.stop")


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_stop_signal_stops_the_loop_once_however_many_arrive(logs: io.StringIO) -> None:
    calls: list[str] = []
    loop = Loop(calls, signals=(signal.SIGTERM, signal.SIGINT, signal.SIGTERM))
    code = run_until_signalled(loop, Clients(calls), shutdown_timeout_s=5, leave=leave)
    assert code == 0
    assert loop.stops == 1
    received = [r["signal"] for r in records(logs) if r["message"] == "signal received"]
    assert received == ["SIGTERM", "SIGINT", "SIGTERM"]


def test_on_a_stop_the_http_server_stops_then_the_clients_close_then_stopped_is_logged(
    logs: io.StringIO,
) -> None:
    calls: list[str] = []
    code = run_until_signalled(
        Loop(calls, code=0), Clients(calls), shutdown_timeout_s=5, http=Http(calls), leave=leave
    )
    assert code == 0
    assert calls == [
        "http.start",
        "loop.run",
        "loop.stop",
        "loop.returned",
        "http.stop",
        "clients.close(ledger=True)",
    ]
    assert records(logs)[-1] == {**records(logs)[-1], "message": "stopped", "exit_code": 0}


def test_a_loop_running_past_the_shutdown_timeout_takes_the_forced_exit_leaving_the_ledger_open(
    logs: io.StringIO,
) -> None:
    calls: list[str] = []
    loop = Loop(calls, ignores_stop=True)
    started = time.monotonic()
    try:
        with pytest.raises(Left) as left:
            run_until_signalled(
                loop, Clients(calls), shutdown_timeout_s=0.2, settle_s=0.1, leave=leave
            )
    finally:
        loop.released.set()
    assert time.monotonic() - started < 0.2 + 0.2 + 0.1 + 1  # signal, timeout, settle, slack
    assert left.value.code == 0  # stopped by a signal, only late
    assert "loop.returned" not in calls[: calls.index("clients.close(ledger=False)")]
    messages = [r["message"] for r in records(logs)]
    assert any(m.startswith("shutdown timeout") for m in messages)
    assert messages[-1] == "stopped"


def test_a_loop_that_returns_with_work_abandoned_in_threads_takes_the_forced_exit(
    logs: io.StringIO,
) -> None:
    calls: list[str] = []
    with pytest.raises(Left) as left:
        run_until_signalled(
            Loop(calls, abandoned=2), Clients(calls), shutdown_timeout_s=5, leave=leave
        )
    assert left.value.code == 0
    assert calls[-1] == "clients.close(ledger=False)"
    assert records(logs)[-1]["message"] == "stopped"


def test_a_loop_that_ends_by_itself_gives_its_exit_code_and_is_still_told_to_stop(
    logs: io.StringIO,
) -> None:
    calls: list[str] = []
    loop = Loop(calls, signals=(), code=1, ignores_stop=True)
    loop.released.set()  # returns at once, with no signal
    code = run_until_signalled(loop, Clients(calls), shutdown_timeout_s=5, leave=leave)
    assert code == 1
    assert loop.stops == 1
    assert calls[-1] == "clients.close(ledger=True)"
    assert records(logs)[-1] == {**records(logs)[-1], "message": "stopped", "exit_code": 1}


def test_a_loop_that_raises_exits_1_with_the_error_logged(logs: io.StringIO) -> None:
    class Failing(Loop):
        def run(self) -> int:
            raise ValueError("the subscription vanished")

    calls: list[str] = []
    code = run_until_signalled(Failing(calls), Clients(calls), shutdown_timeout_s=5, leave=leave)
    assert code == 1
    [failed] = [r for r in records(logs) if r["message"] == "the main loop failed"]
    assert failed["error"] == "ValueError"
    assert calls[-1] == "clients.close(ledger=True)"


def test_an_http_server_that_cannot_start_is_logged_cannot_start_and_the_command_exits_1(
    logs: io.StringIO,
) -> None:
    calls: list[str] = []
    code = run_until_signalled(
        Loop(calls), Clients(calls), shutdown_timeout_s=5, http=Http(calls, fails=True), leave=leave
    )
    assert code == 1
    assert calls == ["http.start", "clients.close(ledger=True)"]  # the loop never ran
    [record] = [r for r in records(logs) if r["message"] == "cannot start"]
    assert "cannot serve HTTP" in record["detail"]


def test_the_signal_handlers_before_the_lifecycle_are_back_after_it(logs: io.StringIO) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    calls: list[str] = []
    run_until_signalled(Loop(calls), Clients(calls), shutdown_timeout_s=5, leave=leave)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_the_signal_handler_takes_no_lock_the_interrupted_main_thread_may_hold(
    logs: io.StringIO,
) -> None:
    # A handler runs in the main thread between two bytecodes: here, while that thread holds
    # the lock of the Event it waits on, as in Event.wait. Setting the Event from the handler
    # would wait for that lock forever (a worker that never stopped on SIGTERM, seen once).
    calls: list[str] = []
    loop = Loop(calls, signals=())
    stop = _StopOnce(loop.stop)
    handled = threading.Event()
    with _stop_signals_call(stop):
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)

        def interrupted_while_waiting() -> None:
            with stop.requested._cond:  # type: ignore[attr-defined]
                handler(signal.SIGTERM, None)
            handled.set()

        threading.Thread(target=interrupted_while_waiting, daemon=True).start()
        assert handled.wait(2), "the handler waited for a lock its own thread held"
    stop.act_on_signals()
    assert loop.stops == 1
    assert [r["signal"] for r in records(logs) if r["message"] == "signal received"] == ["SIGTERM"]
