"""Reading a service's configuration document from ``file://`` or ``gs://``, bounded in size.

A missing or unreadable document is a :class:`ConfigurationError` naming the service and the
location; storage that could not be reached is a :class:`TransientError`.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from worker.sending.errors import ConfigurationError, TransientError

_MAX_DOCUMENT_BYTES = 64 * 1024


def fetch_document(location: str, service_id: str, credentials: Any) -> bytes:
    """The bytes of the document at ``location`` (``file://`` or ``gs://``)."""
    url = urllib.parse.urlsplit(location)
    if url.scheme == "file":
        return _fetch_file(urllib.parse.unquote(url.path), location, service_id)
    if url.scheme == "gs":
        return _fetch_gcs(url.netloc, url.path.lstrip("/"), location, service_id, credentials)
    raise ConfigurationError(
        f"configuration for service {service_id!r} at {location}: unsupported scheme "
        f"{url.scheme!r} (use file:// or gs://)"
    )


def _fetch_file(path: str, location: str, service_id: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise ConfigurationError(
            f"no configuration for service {service_id!r}: {location} does not exist"
        ) from None
    except OSError as error:
        raise ConfigurationError(
            f"configuration for service {service_id!r} at {location} is unreadable "
            f"({type(error).__name__})"
        ) from None
    return _bounded(data, location, service_id)


def _fetch_gcs(bucket: str, name: str, location: str, service_id: str, credentials: Any) -> bytes:
    # Imported here: only gs:// configurations pay for loading the storage client.
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc
    from google.cloud import storage

    try:
        client = storage.Client(credentials=credentials) if credentials else storage.Client()
        data = client.bucket(bucket).blob(name).download_as_bytes(timeout=10)
    except gexc.NotFound:
        raise ConfigurationError(
            f"no configuration for service {service_id!r}: {location} does not exist"
        ) from None
    except auth_exc.DefaultCredentialsError:
        raise ConfigurationError(
            f"configuration for service {service_id!r} at {location} is unreadable: no Google "
            "credentials"
        ) from None
    except (gexc.Forbidden, gexc.Unauthorized):
        raise ConfigurationError(
            f"configuration for service {service_id!r} at {location} is unreadable: "
            "access denied to this identity"
        ) from None
    except (gexc.ServerError, gexc.TooManyRequests, auth_exc.TransportError, OSError) as error:
        raise TransientError(
            f"could not fetch configuration for service {service_id!r} from {location} "
            f"({type(error).__name__})"
        ) from None
    except (gexc.GoogleAPICallError, auth_exc.GoogleAuthError) as error:
        raise ConfigurationError(
            f"configuration for service {service_id!r} at {location} is unreadable "
            f"({type(error).__name__})"
        ) from None
    return _bounded(data, location, service_id)


def _bounded(data: bytes, location: str, service_id: str) -> bytes:
    if len(data) > _MAX_DOCUMENT_BYTES:
        raise ConfigurationError(
            f"configuration for service {service_id!r} at {location} is larger than "
            f"{_MAX_DOCUMENT_BYTES} bytes"
        )
    return data
