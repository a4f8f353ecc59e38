"""SES event records as SES publishes them through EventBridge, for the events reader's tests.

Shaped after AWS's documented examples of SES event data (send, delivery, bounce, complaint,
delivery delay, reject, open), trimmed of fields the reader does not read: ``mail`` carries
the message id, the call's recipients and the tags (SES's own ``ses:*`` tags and the
worker's); each type adds its own section.
"""

from __future__ import annotations

import json
from typing import Any

from worker.formats.tags import worker_tags

SENT_AT = "2026-11-26T05:00:00.000Z"
LATER = "2026-11-26T05:00:01.250Z"
RECIPIENTS = ["alice@example.org", "bob@example.org"]

#: EventBridge's detail-type for each SES eventType.
DETAIL_TYPES = {
    "Send": "Email Sent",
    "Delivery": "Email Delivered",
    "Bounce": "Email Bounced",
    "Complaint": "Email Complaint Received",
    "DeliveryDelay": "Email Delivery Delayed",
    "Reject": "Email Rejected",
    "Open": "Email Opened",
}

SECTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "Send": ("send", {}),
    "Delivery": (
        "delivery",
        {
            "timestamp": LATER,
            "processingTimeMillis": 1250,
            "recipients": ["alice@example.org"],
            "smtpResponse": "250 2.0.0 OK",
            "reportingMTA": "a1-2.smtp-out.eu-west-2.amazonses.com",
        },
    ),
    "Bounce": (
        "bounce",
        {
            "feedbackId": "0102018c-feedback-0001",
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": "bob@example.org",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": LATER,
            "reportingMTA": "dsn; a1-2.smtp-out.eu-west-2.amazonses.com",
        },
    ),
    "Complaint": (
        "complaint",
        {
            "feedbackId": "0102018c-feedback-0002",
            "complaintSubType": None,
            "complainedRecipients": [{"emailAddress": "alice@example.org"}],
            "timestamp": LATER,
            "userAgent": "Mail Provider Feedback Loop",
            "complaintFeedbackType": "abuse",
            "arrivalDate": SENT_AT,
        },
    ),
    "DeliveryDelay": (
        "deliveryDelay",
        {
            "timestamp": LATER,
            "delayType": "TransientCommunicationFailure",
            "expirationTime": "2026-11-26T19:00:00.000Z",
            "delayedRecipients": [
                {
                    "emailAddress": "bob@example.org",
                    "status": "4.4.1",
                    "diagnosticCode": "smtp; 421 4.4.1 Unable to connect",
                }
            ],
        },
    ),
    "Reject": ("reject", {"reason": "Bad content"}),
    "Open": ("open", {"timestamp": LATER, "userAgent": "Mozilla/5.0", "ipAddress": "192.0.2.1"}),
}


def ses_tags(
    service_id: str | None = "billing", request_id: str | None = "order-1842", **more: str
) -> dict[str, list[str]]:
    """``mail.tags`` as SES writes them (name to a list of values): SES's own, the worker's."""
    tags = {
        "ses:configuration-set": ["email-worker"],
        "ses:source-ip": ["192.0.2.10"],
        "ses:from-domain": ["example.com"],
        "ses:caller-identity": ["email-sender"],
    }
    if service_id is not None and request_id is not None:
        tags.update(
            {
                name: [value]
                for name, value in worker_tags(service_id=service_id, request_id=request_id)
            }
        )
    tags.update({name: [value] for name, value in more.items()})
    return tags


def ses_record(
    event_type: str = "Delivery",
    *,
    message_id: str = "0102018c-ses-message-0001",
    tags: dict[str, list[str]] | None = None,
    **section_changes: Any,
) -> dict[str, Any]:
    """One SES event record (EventBridge's ``detail``)."""
    key, section = SECTIONS[event_type]
    return {
        "eventType": event_type,
        "mail": {
            "timestamp": SENT_AT,
            "source": "Billing <billing@example.com>",
            "sourceArn": "arn:aws:ses:eu-west-2:123456789012:identity/example.com",
            "sendingAccountId": "123456789012",
            "messageId": message_id,
            "destination": list(RECIPIENTS),
            "headersTruncated": False,
            "tags": ses_tags() if tags is None else tags,
        },
        key: {**section, **section_changes},
    }


def eventbridge_body(record: dict[str, Any], *, detail_type: str | None = None) -> str:
    """The SQS message body an EventBridge rule targeting the queue delivers for ``record``."""
    return json.dumps(
        {
            "version": "0",
            "id": "7f1a6c2e-0000-4000-8000-000000000001",
            "detail-type": detail_type or DETAIL_TYPES[record["eventType"]],
            "source": "aws.ses",
            "account": "123456789012",
            "time": "2026-11-26T05:00:02Z",
            "region": "eu-west-2",
            "resources": ["arn:aws:ses:eu-west-2:123456789012:configuration-set/email-worker"],
            "detail": record,
        }
    )
