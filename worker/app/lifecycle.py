"""One lifecycle for the commands that run until stopped: ``pull``, ``serve`` and ``events``.

:func:`run_until_signalled` runs a command's main loop in a thread while the main thread
waits for SIGTERM (Cloud Run's stop signal) or SIGINT. The first signal asks the loop to stop;
the loop then has EMAIL_WORKER_SHUTDOWN_TIMEOUT_S (plus ``settle_s``, for a loop that applies
the timeout itself and hands back what it abandoned) to return. Then the HTTP server stops,
the clients close (pending publishes sent), ``stopped`` is logged with the exit code, and
the process leaves. When threads may still be running (the loop did not return in time, or
says it abandoned work blocked in a call a stop cannot cut short), it leaves with
``os._exit``: Python would otherwise wait for them at exit, past the shutdown timeout.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn, Protocol, TypeVar

from worker.config.logs import get_logger

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "HAND_BACK_S",
    "MainLoop",
    "opened_or_logged",
    "run_until_signalled",
]

EXIT_OK = 0
EXIT_FAILURE = 1
#: How long past the shutdown timeout a loop that applies the timeout itself (pull, serve)
#: may take to hand back what it abandoned there (nacks, released claims) before the
#: lifecycle leaves without it.
HAND_BACK_S = 2.0

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How often the main thread looks up from waiting (signal handlers run between its waits).
_POLL_S = 0.1

T = TypeVar("T")


class MainLoop(Protocol):
    """A command's work: runs until stopped (or until it fails)."""

    def run(self) -> int:
        """Work until :meth:`stop` is called; return the exit code (1 when the loop ended
        by itself, unable to go on)."""
        ...

    def stop(self) -> None:
        """Begin winding down; returns at once (the main thread calls it on a stop signal)."""
        ...

    @property
    def abandoned(self) -> int:
        """Units of work left running in threads when :meth:`run` returned (0 normally)."""
        ...


class Closeable(Protocol):
    def close(self, *, ledger: bool = True) -> None: ...


class HttpServer(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


def run_until_signalled(
    loop: MainLoop,
    clients: Closeable,
    *,
    shutdown_timeout_s: float,
    http: HttpServer | None = None,
    settle_s: float = 0.0,
    leave: Callable[[int], NoReturn] = os._exit,
) -> int:
    """Start ``http`` (health, metrics), run ``loop`` until a stop signal and wind down as
    the module says; return the exit code, or leave through ``leave`` when threads may be
    stuck. ``clients`` are closed in every case; a server that cannot start is logged
    ``cannot start`` and gives exit code 1."""
    stop = _StopOnce(loop.stop)
    with _stop_signals_call(stop):
        if http is not None and not _started(http):
            clients.close()
            return EXIT_FAILURE
        code, finished = _run(loop, stop, shutdown_timeout_s + settle_s)
        stuck = not finished or loop.abandoned > 0
        if not finished:
            get_logger().warning(
                "shutdown timeout: the main loop was still running; what it held returns "
                "to its queue when its lease runs out",
                timeout_s=shutdown_timeout_s,
            )
        if http is not None:
            http.stop()
        clients.close(ledger=not stuck)  # a stuck thread may still be using the ledger
        stop.act_on_signals()  # those that came while winding down
        get_logger().info("stopped", exit_code=code)
    if stuck:
        sys.stdout.flush()
        sys.stderr.flush()
        leave(code)
    return code


def opened_or_logged(open_: Callable[[], T]) -> T | None:
    """``open_()``'s result, or None after logging ``cannot start`` with why it failed."""
    try:
        return open_()
    except Exception as error:
        get_logger().error("cannot start", error=type(error).__name__, detail=str(error)[:500])
        return None


class _StopOnce:
    """Calls ``stop`` the first time it is called; later calls only count.

    The stop signals are only noted by their handler (:meth:`note_signal`), and acted on by the
    main thread between its waits (:meth:`act_on_signals`). A handler runs in the main thread
    between two of its bytecodes, possibly while that thread holds the lock of the very Event
    it waits on; a handler that set the Event, or logged, could wait for that lock forever.
    """

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self.requested = threading.Event()
        self._signals: list[int] = []  # appended to by the handler alone: no lock taken
        self._acted_on = 0

    def __call__(self) -> None:
        if self.requested.is_set():
            return
        self.requested.set()
        self._stop()

    def note_signal(self, signum: int) -> None:
        self._signals.append(signum)

    def act_on_signals(self) -> None:
        """Log each signal noted since the last call, and stop on the first."""
        while self._acted_on < len(self._signals):
            signum = self._signals[self._acted_on]
            self._acted_on += 1
            get_logger().info("signal received", signal=signal.Signals(signum).name)
            self()


@contextmanager
def _stop_signals_call(stop: _StopOnce) -> Iterator[None]:
    """SIGTERM and SIGINT are noted for ``stop`` to act on, until the block ends."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.note_signal(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _started(http: HttpServer) -> bool:
    try:
        http.start()
    except RuntimeError as error:
        get_logger().error("cannot start", error=type(error).__name__, detail=str(error))
        return False
    return True


def _run(loop: MainLoop, stop: _StopOnce, timeout_s: float) -> tuple[int, bool]:
    """Run ``loop`` in a thread until it returns, or until ``timeout_s`` after a stop;
    return its exit code and whether it returned."""
    codes: list[int] = []

    def run() -> None:
        try:
            codes.append(loop.run())
        except Exception as error:
            get_logger().error(
                "the main loop failed", error=type(error).__name__, detail=str(error)[:500]
            )
            codes.append(EXIT_FAILURE)

    thread = threading.Thread(target=run, name="main-loop", daemon=True)
    thread.start()
    while thread.is_alive() and not stop.requested.wait(_POLL_S):
        stop.act_on_signals()
    stop()  # also when the loop ended by itself: whatever it started winds down
    deadline = time.monotonic() + timeout_s
    while thread.is_alive() and (left_s := deadline - time.monotonic()) > 0:
        thread.join(min(left_s, _POLL_S))
        stop.act_on_signals()
    if thread.is_alive():
        return EXIT_OK, False  # stopped by a signal, only late
    return (codes[0] if codes else EXIT_FAILURE), True
