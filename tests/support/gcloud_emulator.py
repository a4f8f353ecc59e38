"""What gcloud's Java emulators share: a process group on a free loopback port.

``gcloud … emulators … start`` runs a Python wrapper that starts Java. The wrapper calls
``setpgid(0, 0)`` unless it already leads a session, so it is started in a new session (see
``ManagedProcess``) to keep Java in a group that is killed whole.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from typing import Self

from tests.support.ports import LOOPBACK, free_port, port_is_open
from tests.support.process import ManagedProcess


class GcloudEmulator:
    """Start, stop and probe one emulator; subclasses give its name and command line."""

    name = "emulator"

    def __init__(self, port: int | None, project_id: str) -> None:
        self.port = port or free_port()
        self.project_id = project_id
        self._config_dir = tempfile.mkdtemp(prefix="gcloud-config-")
        self._process: ManagedProcess | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the value for the client library's ``…_EMULATOR_HOST``."""
        return f"{LOOPBACK}:{self.port}"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout_s: float = 60.0) -> Self:
        """Start (or restart after ``stop()``) on the same port; the emulator starts empty."""
        env = dict(os.environ)
        env.update(
            # A private gcloud config: no prompts, no update checks, no usage reports, and
            # no probing of a metadata server for credentials it does not need.
            CLOUDSDK_CONFIG=self._config_dir,
            CLOUDSDK_CORE_DISABLE_PROMPTS="1",
            CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="1",
            CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true",
            CLOUDSDK_CORE_CHECK_GCE_METADATA="false",
        )
        self._process = ManagedProcess(self.name, self.argv(), env=env)
        self._process.start(self._answers, timeout_s)
        return self

    def stop(self) -> None:
        """Kill the emulator (wrapper and Java); clients built earlier start failing."""
        if self._process is not None:
            self._process.stop()

    def close(self) -> None:
        """Stop and remove the temp directory (session teardown)."""
        self.stop()
        shutil.rmtree(self._config_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def pid_group(self) -> int | None:
        """Process group id of the running emulator (for leak checks)."""
        return self._process.pgid if self._process is not None else None

    def _answers(self) -> bool:
        if not port_is_open(LOOPBACK, self.port):
            return False
        try:
            with urllib.request.urlopen(f"http://{self.host}/", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log_tail(self) -> str:
        return self._process.log_tail() if self._process is not None else ""
