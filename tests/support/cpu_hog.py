"""A busy loop in a child process: one core kept fully loaded, as a noisy neighbour would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import TracebackType


class CpuHog:
    """Spins one core from ``__enter__`` until ``__exit__``."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> CpuHog:
        self._process = subprocess.Popen(
            [sys.executable, "-c", "while True: pass"], start_new_session=True
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=10)
