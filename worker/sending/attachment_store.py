"""Reading attachments by reference from Cloud Storage, with the worker's own identity.

:class:`AttachmentStore` answers two questions about an object: which generation (version)
it is now, with its size (:meth:`AttachmentStore.describe`), and what bytes a given generation
holds (:meth:`AttachmentStore.read`). Which objects may be read at all is decided before
either is asked (:func:`worker.processing.admission.forbidden_attachment`).

Every failure becomes one of the library's errors, by :data:`GCS_HTTP_STATUSES`, a table from
the HTTP status Cloud Storage answered (https://cloud.google.com/storage/docs/json_api/v1/status-codes):
transient ones are retried by the send's retry policy like SES's, permanent ones are final.
The storage client's own retries are off, so that one policy decides. The storage client
is created on first use, so a worker whose requests never name a
``gs://`` attachment never loads it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from worker.sending.errors import (
    AttachmentChangedError,
    AttachmentNotFoundError,
    ConfigurationError,
    EmailError,
    ThrottledError,
    TransientError,
)

__all__ = ["GCS_HTTP_STATUSES", "AttachmentStore", "ObjectVersion", "classify_gcs_error"]

#: How long one storage call may take, in seconds.
CALL_TIMEOUT_S = 60.0

GCS_HTTP_STATUSES: Mapping[int, type[EmailError]] = MappingProxyType(
    {
        # The object is not there (or, for a pinned generation, no longer that generation).
        404: AttachmentNotFoundError,
        # A generation precondition failed: the object changed under the read.
        412: AttachmentChangedError,
        # The worker's identity may not read the object: the operators' IAM grants are wrong.
        401: ConfigurationError,
        403: ConfigurationError,
        # A malformed call or a bucket in a state we cannot read (requester pays, ...).
        400: ConfigurationError,
        # Rate limits.
        429: ThrottledError,
        # Cloud Storage in trouble, or the call timed out: the same read can succeed later.
        408: TransientError,
        500: TransientError,
        502: TransientError,
        503: TransientError,
        504: TransientError,
    }
)


@dataclass(frozen=True)
class ObjectVersion:
    """An object's current generation and its size in bytes."""

    generation: int
    size: int


def classify_gcs_error(error: BaseException, uri_label: str) -> EmailError:
    """``error`` from the storage client as the library's error; ``uri_label`` names the
    attachment in the message (``attachments[2]``), never its bucket or object name."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(error, EmailError):
        return error
    if isinstance(error, gexc.GoogleAPICallError) and error.code is not None:
        kind = GCS_HTTP_STATUSES.get(int(error.code))
        if kind is None:
            kind = TransientError if int(error.code) >= 500 else ConfigurationError
        return kind(_message(kind, uri_label), provider_code=f"gcs_{int(error.code)}")
    if isinstance(error, auth_exc.DefaultCredentialsError):
        return ConfigurationError(f"{uri_label}: no Google credentials to read it with")
    if isinstance(error, (auth_exc.TransportError, ConnectionError, TimeoutError, OSError)):
        return TransientError(f"{uri_label}: Cloud Storage could not be reached")
    if isinstance(error, gexc.RetryError):
        return TransientError(f"{uri_label}: Cloud Storage kept failing")
    return EmailError(f"{uri_label}: unexpected error reading it ({type(error).__name__})")


def _message(kind: type[EmailError], uri_label: str) -> str:
    if kind is AttachmentNotFoundError:
        return f"{uri_label}: the object does not exist"
    if kind is AttachmentChangedError:
        return f"{uri_label}: the object changed since the request was first claimed"
    if kind is ConfigurationError:
        return f"{uri_label}: Cloud Storage refused the worker's read (check its IAM grants)"
    return f"{uri_label}: Cloud Storage is unavailable"


class AttachmentStore:
    """Reads objects as the worker's identity; safe for many threads (one shared client)."""

    def __init__(self, client: Any = None) -> None:
        self._client = client
        self._lock = threading.Lock()

    def describe(self, bucket: str, name: str, label: str) -> ObjectVersion:
        """The object's current generation and size; `AttachmentNotFoundError` if none."""
        try:
            blob = self._storage().bucket(bucket).get_blob(name, timeout=CALL_TIMEOUT_S, retry=None)
        except Exception as error:
            raise classify_gcs_error(error, label) from None
        if blob is None:
            raise AttachmentNotFoundError(f"{label}: the object does not exist")
        return ObjectVersion(generation=int(blob.generation), size=int(blob.size or 0))

    def read(self, bucket: str, name: str, generation: int, label: str) -> bytes:
        """The bytes of ``generation`` of the object; a generation that is gone is
        `AttachmentChangedError` (the caller has just seen it as current)."""
        try:
            blob = self._storage().bucket(bucket).blob(name, generation=generation)
            return bytes(blob.download_as_bytes(timeout=CALL_TIMEOUT_S, retry=None))
        except Exception as error:
            classified = classify_gcs_error(error, label)
            if isinstance(classified, AttachmentNotFoundError):
                raise AttachmentChangedError(
                    f"{label}: the object changed since the request was first claimed"
                ) from None
            raise classified from None

    def _storage(self) -> Any:
        with self._lock:
            if self._client is None:
                # Imported here: only gs:// attachments pay for loading the storage client.
                from google.cloud import storage

                self._client = storage.Client()
            return self._client
