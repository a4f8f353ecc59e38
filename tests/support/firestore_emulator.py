"""gcloud's Firestore emulator (Java) as a subprocess group on a free loopback port.

Started and stopped as ``tests.support.gcloud_emulator`` describes.

google-cloud-firestore clients use the emulator when ``FIRESTORE_EMULATOR_HOST`` is set at
construction time (insecure gRPC channel, anonymous credentials). The emulator accepts any
project id and creates named databases on first use.
"""

from __future__ import annotations

import urllib.parse
import urllib.request

from tests.support.gcloud_emulator import GcloudEmulator

PROJECT_ID = "test-project"
DEFAULT_DATABASE = "(default)"


class FirestoreEmulator(GcloudEmulator):
    name = "firestore-emulator"

    def __init__(self, port: int | None = None, project_id: str = PROJECT_ID) -> None:
        super().__init__(port, project_id)

    def argv(self) -> list[str]:
        return ["gcloud", "emulators", "firestore", "start", f"--host-port={self.host}"]

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
