"""Reading gs:// attachments: every Cloud Storage status classified as the table says, and
objects described and read on the GCS emulator."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc

from tests.support.gcs_emulator import GcsEmulator
from worker.sending import errors
from worker.sending.attachment_store import (
    GCS_HTTP_STATUSES,
    AttachmentStore,
    classify_gcs_error,
)


@pytest.mark.parametrize(("status", "kind"), sorted(GCS_HTTP_STATUSES.items()))
def test_each_storage_status_becomes_the_error_of_the_table(
    status: int, kind: type[errors.EmailError]
) -> None:
    error = classify_gcs_error(gexc.from_http_status(status, "gs://secret-bucket/x"), "a[0]")
    assert type(error) is kind
    assert error.provider_code == f"gcs_{status}"
    assert "secret-bucket" not in error.message


def test_the_table_retries_exactly_rate_limits_timeouts_and_server_errors() -> None:
    retried = {status for status, kind in GCS_HTTP_STATUSES.items() if kind.retryable}
    assert retried == {408, 429, 500, 502, 503, 504}


def test_an_unlisted_server_error_is_transient_and_an_unlisted_client_error_is_not() -> None:
    assert classify_gcs_error(gexc.from_http_status(507, "x"), "a[0]").retryable
    assert type(classify_gcs_error(gexc.from_http_status(409, "x"), "a[0]")) is (
        errors.ConfigurationError
    )


def test_a_dropped_connection_is_transient() -> None:
    assert type(classify_gcs_error(ConnectionResetError(), "a[0]")) is errors.TransientError


def test_an_object_is_described_with_its_generation_and_size_and_read(
    gcs_env: GcsEmulator,
) -> None:
    bucket = gcs_env.create_bucket()
    gcs_env.put_object(bucket, "dir/a.bin", b"12345")
    store = AttachmentStore()
    version = store.describe(bucket, "dir/a.bin", "attachments[0]")
    assert version.size == 5
    assert store.read(bucket, "dir/a.bin", version.generation, "attachments[0]") == b"12345"


def test_describing_a_missing_object_is_attachment_not_found(gcs_env: GcsEmulator) -> None:
    bucket = gcs_env.create_bucket()
    with pytest.raises(errors.AttachmentNotFoundError, match=r"attachments\[3\]"):
        AttachmentStore().describe(bucket, "missing.bin", "attachments[3]")
