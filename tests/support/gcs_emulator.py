"""The PyPI ``gcp-storage-emulator`` as a subprocess on a free loopback port.

google-cloud-storage honours ``STORAGE_EMULATOR_HOST`` (``http://127.0.0.1:PORT``) at
``Client()`` construction: it then uses that endpoint with anonymous credentials, so
``storage.Client(project="test-project").bucket(b).blob(n).download_as_bytes()`` works
unchanged.
"""

from __future__ import annotations

import sys
import urllib.request
import uuid
from pathlib import Path

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.support.ports import LOOPBACK
from tests.support.process import ManagedProcess
from tests.support.servers import SubprocessServer

PROJECT_ID = "test-project"


class GcsEmulator(SubprocessServer):
    """``endpoint`` is the value for ``STORAGE_EMULATOR_HOST``."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        cli = Path(sys.executable).with_name("gcp-storage-emulator")
        argv = [str(cli), "start", f"--host={LOOPBACK}", f"--port={self.port}", "--in-memory"]
        self._process = ManagedProcess("gcs-emulator", argv)

    def _probe(self) -> bool:
        url = f"{self.endpoint}/storage/v1/b?project={PROJECT_ID}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)

    def reset(self) -> None:
        """Delete every bucket and object (the emulator's ``GET /wipe``)."""
        with urllib.request.urlopen(f"{self.endpoint}/wipe", timeout=10) as response:
            response.read()

    def client(self) -> storage.Client:
        """A client for arranging state, independent of the environment."""
        return storage.Client(
            project=PROJECT_ID,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (default: a unique name) and return its name."""
        name = name or f"test-bucket-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(name)
        return name

    def put_object(
        self, bucket: str, name: str, data: bytes, content_type: str | None = None
    ) -> None:
        """Upload ``data``; the bucket is created first if it does not exist."""
        client = self.client()
        target = client.lookup_bucket(bucket) or client.create_bucket(bucket)
        target.blob(name).upload_from_string(data, content_type=content_type)

    def get_object(self, bucket: str, name: str) -> bytes:
        data: bytes = self.client().bucket(bucket).blob(name).download_as_bytes()
        return data
