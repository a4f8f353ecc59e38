"""Replays and purges of large selections, run in the background while a page shows progress.

A selection of more than :data:`INLINE_LIMIT` dead letters would keep the confirming POST
waiting for as long as the replay or purge takes, with nothing to show. Instead it becomes a
:class:`Job`, run on a thread of its own, and the POST answers at once with a redirect to the
job's page, ``/jobs/ID``. That page is streamed: it says how many of the selection are done
each time the number changes (:meth:`Job.steps`), then the same outcome a small selection
gets, and ends. The browser shows each line as it arrives, so progress needs no script (the
Content-Security-Policy is unchanged) and no self-reloading page (``<meta http-equiv=
"refresh">`` takes the pace out of the user's hands, which accessibility checks refuse).

Jobs live in the console's memory: the last :data:`KEPT_JOBS` are kept, and a restart forgets
them (what they did is in the structured log). A job's id is random, so one job's page cannot
be found from another's.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.api_core.exceptions import GoogleAPIError

from worker.client.pubsub_rpc import describe_error
from worker.config.logs import get_logger
from worker.ledger import LedgerUnavailable

__all__ = ["INLINE_LIMIT", "Job", "Jobs"]

log = get_logger()

#: Selections up to this many dead letters are replayed or purged within the POST itself.
INLINE_LIMIT = 50
#: The most jobs kept (finished or not); the oldest is forgotten first.
KEPT_JOBS = 100
#: How often a job's streamed page looks for progress, in seconds.
POLL_S = 0.25

#: The work of a job: given a callback told how many more are done, returns the outcome.
Work = Callable[[Callable[[int], None]], dict[str, Any]]


@dataclass
class Job:
    """One replay or purge in the background, and how far it has got."""

    id: str
    action: str
    who: str
    total: int
    processed: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None

    def advance(self, count: int) -> None:
        with self._lock:
            self.processed = min(self.total, self.processed + count)

    def steps(self, poll_s: float = POLL_S) -> Iterator[dict[str, Any]]:
        """The job's document now, then again each time more are done, until it has finished
        (the last one yielded may be the finished job's)."""
        shown = -1
        while True:
            document = self.document()
            if document["processed"] != shown:
                shown = document["processed"]
                yield document
            if document["finished"]:
                return
            time.sleep(poll_s)

    def finish(self, result: dict[str, Any] | None, error: str | None) -> None:
        with self._lock:
            if result is not None:
                self.processed = self.total
            self.result, self.error = result, error

    def document(self) -> dict[str, Any]:
        """The job as its page shows it (and its JSON twin)."""
        with self._lock:
            return {
                "id": self.id,
                "action": self.action,
                "total": self.total,
                "processed": self.processed,
                "finished": self.finished,
                "error": self.error,
                "result": self.result,
            }


class Jobs:
    """The console's jobs, by id."""

    def __init__(self, kept: int = KEPT_JOBS) -> None:
        self._kept = kept
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def start(
        self, action: str, who: str, total: int, work: Work, finished: Callable[[Job], None]
    ) -> Job:
        """Run ``work`` on a thread of its own; ``finished`` is called with the job at the end
        (also when it failed)."""
        job = Job(secrets.token_urlsafe(16), action, who, total)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self._kept:
                self._jobs.popitem(last=False)
        thread = threading.Thread(
            target=_run, args=(job, work, finished), name=f"console-{action}", daemon=True
        )
        thread.start()
        return job


def _run(job: Job, work: Work, finished: Callable[[Job], None]) -> None:
    try:
        job.finish(work(job.advance), None)
    except GoogleAPIError as error:
        job.finish(None, f"Pub/Sub cannot be used now: {describe_error(error)}")
    except LedgerUnavailable:
        job.finish(None, "The request ledger cannot be read now.")
    except Exception as error:  # a job's page must say it stopped, not reload for ever
        job.finish(None, f"The {job.action} stopped unexpectedly ({type(error).__name__}).")
    finished(job)
