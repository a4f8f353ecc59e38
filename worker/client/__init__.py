"""The client side: publishing email requests from a service, and bounded Pub/Sub calls.

The layer owns :class:`EmailClient`, the typed client services use to publish requests and
await their results (documented as ``worker.client``), which checks each request with the
worker's own parser before publishing and reads a service's own results subscription
(:mod:`worker.client.results`), and :mod:`worker.client.pubsub_rpc`, the Pub/Sub
clients and calls with an overall deadline that it shares with the operators' tools. It
stands on the formats alone and never loads the worker's processing or transports.
"""

from __future__ import annotations

from worker.client.email_client import (
    MAX_REQUEST_BYTES,
    AttachmentSpec,
    EmailClient,
    EmailRequestSpec,
    GcsAttachmentSpec,
    PendingResult,
    ReceivedResult,
    RequestRejected,
    ResultTimeout,
    TemplateSpec,
    prepare_request,
)

__all__ = [
    "MAX_REQUEST_BYTES",
    "AttachmentSpec",
    "EmailClient",
    "EmailRequestSpec",
    "GcsAttachmentSpec",
    "PendingResult",
    "ReceivedResult",
    "RequestRejected",
    "ResultTimeout",
    "TemplateSpec",
    "prepare_request",
]
