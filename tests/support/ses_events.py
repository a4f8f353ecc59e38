"""SES's event path on moto, as terraform builds it on AWS, and SES's Send events.

``create_ses_events_queue`` makes a queue with a dead-letter queue (redrive after
``MAX_RECEIVES`` receives) and a rule on the default EventBridge bus sending SES's events to
it. ``send_events_on`` is a fault-proxy rewriter that does what SES does after accepting a
send: it puts a Send event, tagged as the send was, on that bus (moto's SES publishes none).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
from dataclasses import dataclass
from typing import Any

from tests.events.ses_records import DETAIL_TYPES, ses_record
from tests.support.fault_proxy import ProxiedRequest, Rewriter, UpstreamResponse
from tests.support.moto_server import MotoServer

#: Short, so that a message left alone comes back (and reaches the DLQ) within seconds.
VISIBILITY_TIMEOUT_S = 2
MAX_RECEIVES = 2


@dataclass
class SesEventsQueue:
    """The queue EventBridge fills with SES events, its dead-letter queue, admin clients."""

    url: str
    dead_letter_url: str
    sqs: Any
    bus: Any

    def put_event(self, record: dict[str, Any]) -> None:
        """Put an SES event record on the default bus, as SES does (source ``aws.ses``)."""
        answer = self.bus.put_events(
            Entries=[
                {
                    "Source": "aws.ses",
                    "DetailType": DETAIL_TYPES[record["eventType"]],
                    "Detail": json.dumps(record),
                    "EventBusName": "default",
                }
            ]
        )
        assert answer["FailedEntryCount"] == 0, answer

    def send_body(self, body: str) -> None:
        """Put a message on the queue directly, bypassing EventBridge."""
        self.sqs.send_message(QueueUrl=self.url, MessageBody=body)

    def counts(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of the queue (or of ``url``)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def dead_letters(self) -> list[str]:
        """The bodies waiting in the dead-letter queue (received without deleting)."""
        answer = self.sqs.receive_message(
            QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        return [message["Body"] for message in answer.get("Messages", [])]


def create_ses_events_queue(moto: MotoServer) -> SesEventsQueue:
    """The queue, its dead-letter queue and the EventBridge rule, on ``moto``."""
    sqs = moto.admin_client("sqs")
    bus = moto.admin_client("events")
    dead_letter_url = sqs.create_queue(QueueName="ses-events-dead-letter")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(
        QueueUrl=dead_letter_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName="ses-events",
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT_S),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": str(MAX_RECEIVES)}
            ),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    bus.put_rule(
        Name="ses-events",
        EventBusName="default",
        EventPattern=json.dumps(
            {"source": ["aws.ses"], "detail-type": sorted(set(DETAIL_TYPES.values()))}
        ),
    )
    bus.put_targets(Rule="ses-events", EventBusName="default", Targets=[{"Id": "q", "Arn": arn}])
    return SesEventsQueue(url=url, dead_letter_url=dead_letter_url, sqs=sqs, bus=bus)


def send_events_on(queue: SesEventsQueue) -> Rewriter:
    """A rewriter putting SES's Send event on the bus for every send moto accepted."""

    def rewrite(request: ProxiedRequest, response: UpstreamResponse) -> UpstreamResponse:
        if request.is_ses_send and response.status == 200:
            body = json.loads(request.body)
            message_id = json.loads(response.body)["MessageId"]
            queue.put_event(ses_record("Send", message_id=message_id, tags=_tags_of(body)))
        return response

    return rewrite


def _tags_of(body: dict[str, Any]) -> dict[str, list[str]]:
    """The send's tags as SES's events carry them: the call's EmailTags, else the header's."""
    tags = body.get("EmailTags")
    if tags:
        return {tag["Name"]: [tag["Value"]] for tag in tags}
    raw = base64.b64decode(body["Content"]["Raw"]["Data"])
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    found: dict[str, list[str]] = {}
    for pair in str(headers.get("X-SES-MESSAGE-TAGS", "")).split(","):
        name, _, value = pair.strip().partition("=")
        if name:
            found[name] = [value]
    return found
