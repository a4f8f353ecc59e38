"""``email-worker pull`` (or ``serve``) as a real process, and a results collector beside it.

The reliability tests kill, stop and restart the worker, so it runs as the command operators
run (``.venv/bin/email-worker pull``), each incarnation logging to its own file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.pubsub_emulator import PubSubEmulator

EMAIL_WORKER = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "email-worker")


class WorkerProcess:
    """One ``email-worker pull`` (or ``command``) incarnation with its own log file."""

    def __init__(self, env: dict[str, str], log_path: Path, command: str = "pull") -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [EMAIL_WORKER, command], env={**os.environ, **env}, stdout=log, stderr=log
            )

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, nothing in flight is settled."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait for the exit code."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines (stdlib warnings on stderr are plain text and skipped)."""
        records = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records


class ResultCollector:
    """Pulls (and acks) results in a background thread, riding out emulator outages.

    Each result is stored with its arrival time (monotonic) and its Pub/Sub attributes.
    """

    def __init__(self, emulator: PubSubEmulator, subscription: str) -> None:
        self.emulator = emulator
        self.subscription = subscription
        self.results: list[dict[str, Any]] = []
        self.pull_errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="result-collector", daemon=True)

    def __enter__(self) -> ResultCollector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                received = self.emulator.pull(self.subscription, max_messages=500, timeout_s=1.0)
            except Exception:  # the emulator is down or restarting: try again shortly
                self.pull_errors += 1
                self._stop.wait(0.2)
                continue
            now = time.monotonic()
            with self._lock:
                for message in received:
                    result = json.loads(message.message.data)
                    result["_attributes"] = dict(message.message.attributes)
                    result["_arrived"] = now
                    self.results.append(result)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.results)

    def request_ids(self) -> set[str]:
        return {r["request_id"] for r in self.snapshot()}

    def wait_for_requests(self, request_ids: set[str], timeout_s: float) -> None:
        """Block until every request in ``request_ids`` has at least one result."""
        deadline = time.monotonic() + timeout_s
        while True:
            missing = request_ids - self.request_ids()
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(missing)} of {len(request_ids)} requests have no result after "
                    f"{timeout_s:.0f}s, e.g. {sorted(missing)[:5]}"
                )
            time.sleep(0.2)

    def wait_for_count(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.snapshot()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.snapshot())} of {count} results arrived")
            time.sleep(0.05)

    def counts(self) -> Counter[str]:
        return Counter(r["request_id"] for r in self.snapshot())
