"""Where a template store keeps its files: a directory (``file://``) or a GCS bucket (``gs://``).

Four small operations each: list a folder, read a file (at most 256 KiB), tell
whether one exists, and create one only if it does not exist yet (how versions are claimed).
Storage failures become the worker's transient or configuration errors.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from worker.sending.errors import ConfigurationError, TransientError

MAX_PART_BYTES = 256 * 1024


class Backend:
    def list(self, folder: str) -> list[str]:
        raise NotImplementedError

    def read(self, path: str) -> bytes | None:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def create(self, path: str, data: bytes) -> bool:
        """Write ``data`` only if ``path`` does not exist yet; whether it was written."""
        raise NotImplementedError


class FileBackend(Backend):
    def __init__(self, root: str) -> None:
        self.root = root

    def _path(self, path: str) -> str:
        return os.path.join(self.root, path) if path else self.root

    def list(self, folder: str) -> list[str]:
        try:
            return os.listdir(self._path(folder))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def read(self, path: str) -> bytes | None:
        try:
            with open(self._path(path), "rb") as handle:
                return _bounded(handle.read(MAX_PART_BYTES + 1), path)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def exists(self, path: str) -> bool:
        return os.path.isfile(self._path(path))

    def create(self, path: str, data: bytes) -> bool:
        full = self._path(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        try:
            descriptor = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        return True


class GcsBackend(Backend):
    def __init__(self, bucket: str, prefix: str, credentials: Any) -> None:
        # Imported here: only gs:// stores pay for loading the storage client.
        from google.cloud import storage

        with _storage_errors(f"gs://{bucket}"):
            client = storage.Client(credentials=credentials) if credentials else storage.Client()
        self.bucket = client.bucket(bucket)
        self.prefix = prefix

    def _key(self, path: str) -> str:
        return "/".join(part for part in (self.prefix, path) if part)

    def list(self, folder: str) -> list[str]:
        prefix = self._key(folder) + "/"
        with _storage_errors(prefix):
            blobs = self.bucket.client.list_blobs(self.bucket, prefix=prefix, delimiter="/")
            files = [blob.name[len(prefix) :] for blob in blobs]
            folders = [p[len(prefix) :].rstrip("/") for p in blobs.prefixes]
        return files + folders

    def read(self, path: str) -> bytes | None:
        from google.api_core import exceptions as gexc

        with _storage_errors(path):
            try:
                data = self.bucket.blob(self._key(path)).download_as_bytes(timeout=10)
            except gexc.NotFound:
                return None
        return _bounded(data, path)

    def exists(self, path: str) -> bool:
        with _storage_errors(path):
            return bool(self.bucket.blob(self._key(path)).exists(timeout=10))

    def create(self, path: str, data: bytes) -> bool:
        from google.api_core import exceptions as gexc

        with _storage_errors(path):
            try:
                self.bucket.blob(self._key(path)).upload_from_string(
                    data, if_generation_match=0, timeout=30
                )
            except gexc.PreconditionFailed:
                return False
        return True


@contextlib.contextmanager
def _storage_errors(where: str) -> Iterator[None]:
    """Turn storage failures into the worker's transient or configuration errors."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    try:
        yield
    except (gexc.ServerError, gexc.TooManyRequests, auth_exc.TransportError, OSError) as error:
        name = type(error).__name__
        raise TransientError(f"template storage unreachable at {where} ({name})") from None
    except (gexc.GoogleAPICallError, auth_exc.GoogleAuthError) as error:
        name = type(error).__name__
        raise ConfigurationError(f"template storage unreadable at {where} ({name})") from None


def _bounded(data: bytes, path: str) -> bytes:
    if len(data) > MAX_PART_BYTES:
        raise ConfigurationError(f"template file {path} is larger than {MAX_PART_BYTES} bytes")
    return data
