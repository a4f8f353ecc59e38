"""What the start-up checks share (:mod:`worker.app.checks`): their outcomes, running calls
concurrently within a deadline, and one-line descriptions of errors."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

__all__ = [
    "COMMANDS",
    "NO_CREDENTIALS",
    "NO_CREDENTIALS_IN_TIME",
    "Background",
    "Check",
    "Command",
    "State",
    "concurrently",
    "describe",
]

Command = Literal["pull", "serve", "events"]
COMMANDS: tuple[Command, ...] = ("pull", "serve", "events")

_HOW_TO_LOG_IN = (
    "run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service account key file, or run on Google Cloud as a service account "
    "(PUBSUB_EMULATOR_HOST selects the Pub/Sub emulator, which needs none)"
)
NO_CREDENTIALS = "no Google credentials: " + _HOW_TO_LOG_IN
NO_CREDENTIALS_IN_TIME = "no Google credentials found in time: " + _HOW_TO_LOG_IN

_T = TypeVar("_T")


class State(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``what`` was verified; ``detail`` is the problem (failed, one
    line) or why the check could not be made (skipped)."""

    what: str
    state: State
    detail: str = ""


class Background:
    """A call running in a daemon thread from the start: whether it is done, what it raised."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.error: Exception | None = None
        self._call = call
        self._done = threading.Event()
        threading.Thread(target=self._run, name="check", daemon=True).start()

    def _run(self) -> None:
        try:
            self._call()
        except Exception as error:
            self.error = error
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, deadline: float) -> bool:
        """Whether the call is done by ``deadline``."""
        return self._done.wait(max(0.0, deadline - time.monotonic()))


def concurrently(calls: Sequence[Callable[[], _T]], deadline: float) -> list[_T | Exception | None]:
    """Each call's result or exception, or None for one still running at ``deadline``.

    Daemon threads: a call stuck on the network must not keep the process from exiting.
    """
    answers: list[_T | Exception | None] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            answers[index] = calls[index]()
        except Exception as error:
            answers[index] = error

    threads = [
        threading.Thread(target=run, args=(index,), name="check", daemon=True)
        for index in range(len(calls))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [None if thread.is_alive() else answers[n] for n, thread in enumerate(threads)]


def describe(error: BaseException) -> str:
    from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError

    from worker.client.pubsub_rpc import describe_error

    if isinstance(error, DefaultCredentialsError):
        return NO_CREDENTIALS
    if isinstance(error, GoogleAuthError):
        return f"Google credentials were refused ({type(error).__name__})"
    return describe_error(error)
