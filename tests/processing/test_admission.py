"""Admission's rule on attachments by reference: only objects under the service's prefixes,
for every prefix trick, refused before anything is read or sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.config.gcs_uri import parse_prefix_uri
from worker.config.settings import Settings
from worker.formats.request import parse_request
from worker.processing.admission import forbidden_attachment
from worker.processing.pipeline import Delivery, Deps, Status, process
from worker.sending.service_config import ServiceConfig
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession

CONFIG = ServiceConfig(
    service_id="billing",
    service_role_arn="arn:aws:iam::123456789012:role/x",
    default_from_address="billing@example.com",
    attachment_prefixes=(
        parse_prefix_uri("gs://files/billing/"),
        parse_prefix_uri("gs://billing-only/"),
    ),
)


def document(*uris: str) -> dict[str, Any]:
    return {
        "version": 1,
        "service_id": "billing",
        "to": ["alice@example.net"],
        "subject": "Hi",
        "text": "Hello",
        "attachments": [
            {"filename": "a.pdf", "content_type": "application/pdf", "gcs": uri} for uri in uris
        ],
    }


def forbidden_index(*uris: str, config: ServiceConfig | None = CONFIG) -> int | None:
    data = json.dumps(document(*uris)).encode()
    return forbidden_attachment(
        parse_request(data, pubsub_message_id="m1", default_service_id=None), config
    )


def test_objects_under_the_services_prefixes_are_allowed() -> None:
    assert forbidden_index("gs://files/billing/2026/a.pdf", "gs://billing-only/x/y.pdf") is None


@pytest.mark.parametrize(
    "uri",
    [
        "gs://files/shipping/a.pdf",
        "gs://files/billingx/a.pdf",
        "gs://files/billing.pdf",
        "gs://files-other/billing/a.pdf",
        "gs://billing-only-not/a.pdf",
        "gs://billing/files/billing/a.pdf",
    ],
)
def test_an_object_outside_every_prefix_is_forbidden(uri: str) -> None:
    assert forbidden_index("gs://files/billing/ok.pdf", uri) == 1


def test_without_a_service_configuration_every_reference_is_forbidden() -> None:
    assert forbidden_index("gs://files/billing/a.pdf", config=None) == 0


def test_a_request_naming_another_services_file_is_rejected_without_sending() -> None:
    session = RecordingSession(lambda _: ["ses-1"], service_config=CONFIG)
    settings = Settings.from_env(
        {"EMAIL_WORKER_ALLOWED_SERVICES": "billing", "EMAIL_WORKER_TENANCY": "shared"}
    )
    deps = Deps(settings, SessionCache(lambda _: session, ttl_s=60))
    data = json.dumps(document("gs://files/shipping/manifest.pdf")).encode()
    outcome = process(Delivery(data, {}, message_id="m1", delivery_attempt=1), deps)
    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "attachment_forbidden")
    assert "shipping" not in (outcome.error_message or "")
    assert session.calls == 0
