"""The hand-written subscriber the worker is measured against: what a user writes in 40 lines.

Google's streaming-pull sample (default flow control and executor), boto3's SES v2 send of a
raw message, a result publish, then ack. No validation, no structured logging, no retries
beyond botocore's defaults. Static dummy AWS keys come from the environment (benchmark only).
"""

import json
import os
import signal
from email.message import EmailMessage

import boto3
from google.cloud import pubsub_v1

project = os.environ["GOOGLE_CLOUD_PROJECT"]
subscriber = pubsub_v1.SubscriberClient()
publisher = pubsub_v1.PublisherClient()
ses = boto3.client("sesv2")
subscription = subscriber.subscription_path(project, os.environ["BASELINE_SUBSCRIPTION"])
results_topic = publisher.topic_path(project, os.environ["BASELINE_RESULTS_TOPIC"])


def callback(message: pubsub_v1.subscriber.message.Message) -> None:
    request = json.loads(message.data)
    email = EmailMessage()
    email["From"] = request["from"]
    email["To"] = ", ".join(request["to"])
    email["Subject"] = request["subject"]
    email.set_content(request["text"])
    if "html" in request:
        email.add_alternative(request["html"], subtype="html")
    response = ses.send_email(
        FromEmailAddress=request["from"],
        Destination={"ToAddresses": request["to"]},
        Content={"Raw": {"Data": email.as_bytes()}},
    )
    result = {
        "request_id": request["request_id"],
        "status": "sent",
        "message_ids": [response["MessageId"]],
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
