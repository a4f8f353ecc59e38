"""Transports: how Pub/Sub messages reach the processing, and how their answers go back.

The layer owns streaming pull (:class:`PullWorker`: flow control, leases, reopening streams,
graceful shutdown) and push (:class:`PushEndpoint`: OIDC token checks, envelope decoding, HTTP
status codes as acks and nacks), and the HTTP app both serve for health, readiness and
metrics (:func:`create_app`). A transport only turns a message into a
:class:`~worker.processing.Delivery` and hands it to the :class:`~worker.processing.Handler`;
the two transports do not know each other.
"""

from __future__ import annotations

from worker.transports.http_app import create_app
from worker.transports.pull import PullWorker, flow_control
from worker.transports.push import PushEndpoint, authenticator_for, parse_envelope, push_app
from worker.transports.push_auth import PushAuthenticator

__all__ = [
    "PullWorker",
    "PushAuthenticator",
    "PushEndpoint",
    "authenticator_for",
    "create_app",
    "flow_control",
    "parse_envelope",
    "push_app",
]
