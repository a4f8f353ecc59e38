"""The lean baseline (issue 13): Google's streaming-pull sample plus the least that does the job.

The client library's default flow control and lease management, a MIME message built by plain
string formatting (ASCII only, text/plain), boto3's SES v2 raw send, a result publish waited
for, then ack: one send, one result and an ack after the result is confirmed, as the worker
does for a valid request. No validation, no logs, no retries beyond botocore's. Static dummy
AWS keys come from the environment (benchmark only).
"""

import json
import os
import signal
import uuid
from email.utils import formatdate

import boto3
from google.cloud import pubsub_v1

project = os.environ["GOOGLE_CLOUD_PROJECT"]
subscriber = pubsub_v1.SubscriberClient()
publisher = pubsub_v1.PublisherClient()
ses = boto3.client("sesv2")
subscription = subscriber.subscription_path(project, os.environ["BASELINE_SUBSCRIPTION"])
results_topic = publisher.topic_path(project, os.environ["BASELINE_RESULTS_TOPIC"])

MIME = (
    "From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
    "Message-ID: <{uuid}@bench.example.com>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{body}"
)


def callback(message: pubsub_v1.subscriber.message.Message) -> None:
    request = json.loads(message.data)
    raw = MIME.format(
        sender=request["from"],
        to=", ".join(request["to"]),
        subject=request["subject"],
        date=formatdate(usegmt=True),
        uuid=uuid.uuid4(),
        body=request["text"].replace("\r\n", "\n").replace("\n", "\r\n"),
    )
    response = ses.send_email(
        FromEmailAddress=request["from"],
        Destination={"ToAddresses": request["to"]},
        Content={"Raw": {"Data": raw.encode("ascii")}},
    )
    result = {
        "request_id": request["request_id"],
        "status": "sent",
        "message_ids": [response["MessageId"]],
        "pubsub_message_id": message.message_id,
    }
    publisher.publish(results_topic, json.dumps(result).encode()).result()
    message.ack()


future = subscriber.subscribe(subscription, callback=callback)
signal.signal(signal.SIGTERM, lambda *_: future.cancel())
with subscriber:
    try:
        future.result()
    except Exception:  # cancelled on SIGTERM
        future.cancel()
