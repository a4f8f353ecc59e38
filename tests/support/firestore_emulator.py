"""gcloud's Firestore emulator (Java) as a subprocess group on a free loopback port.

``gcloud emulators firestore start`` runs a Python wrapper that starts Java, like the Pub/Sub
emulator, so it too runs in a session of its own (see ``ManagedProcess``) and is stopped by
killing the whole group.

google-cloud-firestore clients use the emulator when ``FIRESTORE_EMULATOR_HOST`` is set at
construction time (insecure gRPC channel, anonymous credentials). The emulator accepts any
project id and creates named databases on first use.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.parse
import urllib.request

from tests.support.ports import LOOPBACK, free_port, port_is_open
from tests.support.process import ManagedProcess

PROJECT_ID = "test-project"
DEFAULT_DATABASE = "(default)"


class FirestoreEmulator:
    def __init__(self, port: int | None = None, project_id: str = PROJECT_ID) -> None:
        self.port = port or free_port()
        self.project_id = project_id
        self._config_dir = tempfile.mkdtemp(prefix="gcloud-config-")
        self._process: ManagedProcess | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the value for ``FIRESTORE_EMULATOR_HOST``."""
        return f"{LOOPBACK}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> FirestoreEmulator:
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
        argv = ["gcloud", "emulators", "firestore", "start", f"--host-port={self.host}"]
        self._process = ManagedProcess("firestore-emulator", argv, env=env)
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

    def __enter__(self) -> FirestoreEmulator:
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

    # -- data ------------------------------------------------------------------------

    def clear(self, database: str = DEFAULT_DATABASE) -> None:
        """Delete every document of ``database`` (the emulator's own reset endpoint)."""
        path = (
            f"/emulator/v1/projects/{self.project_id}"
            f"/databases/{urllib.parse.quote(database)}/documents"
        )
        request = urllib.request.Request(f"http://{self.host}{path}", method="DELETE")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(
                    f"clearing Firestore database {database} answered {response.status}"
                )
