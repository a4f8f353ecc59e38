"""The SES events reader: what became of sent email, brought back to Google Cloud.

The layer owns ``email-worker events``' work: long-polling the SQS queue that an EventBridge
rule fills with SES's events (:class:`EventsReader`, with keyless STS web-identity credentials
from :func:`sqs_client`), reading each EventBridge envelope and SES event record
(:func:`read_event`: an event v1, a :class:`Dropped` event that is not one of the worker's
sends, or :class:`MalformedEvent`), publishing event v1 to the events topic and deleting the
SQS message only once the publish is confirmed, and its counters (:class:`EventsMetrics`). It
uses the formats (event v1, the worker's SES tags) and the sending layer's AWS credentials;
only ``worker.app`` wires it to Pub/Sub and the settings.
"""

from __future__ import annotations

from worker.events.event_metrics import EventsMetrics
from worker.events.event_records import Dropped, DropReason, MalformedEvent, read_event
from worker.events.reader import EventsReader
from worker.events.sqs import queue_region, sqs_client

__all__ = [
    "DropReason",
    "Dropped",
    "EventsMetrics",
    "EventsReader",
    "MalformedEvent",
    "queue_region",
    "read_event",
    "sqs_client",
]
