"""moto behind the fault proxy behaves like STS + SES v2 to real boto3 clients."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from tests.support.fault_proxy import (
    FaultProxy,
    connection_reset,
    fail_every,
    fail_first,
    hang_up,
    on_ses_send,
    ses_error,
    sts_error,
    sts_expiration_in,
)
from tests.support.metadata_server import MetadataServer
from tests.support.moto_server import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

REGION = "eu-west-2"
ROLE_ARN = "arn:aws:iam::123456789012:role/email-worker"
# Config's retries["max_attempts"] counts *retries* (max_attempts=1 means two tries);
# total_max_attempts=1 is what disables botocore's own retrying.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def assume_role(metadata_server: MetadataServer) -> CredentialsTypeDef:
    """What the worker does: exchange a Google ID token for temporary AWS credentials."""
    sts = boto3.client("sts", region_name=REGION, config=NO_RETRIES)
    response = sts.assume_role_with_web_identity(
        RoleArn=ROLE_ARN,
        RoleSessionName="support-test",
        WebIdentityToken=metadata_server.mint_token("sts.amazonaws.com"),
    )
    return response["Credentials"]


def sesv2_client(credentials: CredentialsTypeDef) -> Any:
    return boto3.client(
        "sesv2",
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        config=NO_RETRIES,
    )


def send(client: Any, to: str = "rcpt@example.org") -> str:
    raw = f"From: sender@example.com\r\nTo: {to}\r\nSubject: hi\r\n\r\nbody\r\n".encode()
    response = client.send_email(
        FromEmailAddress="sender@example.com",
        Destination={"ToAddresses": [to]},
        Content={"Raw": {"Data": raw}},
    )
    message_id: str = response["MessageId"]
    return message_id


def test_send_through_proxy_is_recorded(
    fault_proxy: FaultProxy, moto: MotoServer, metadata_server: MetadataServer
) -> None:
    client = sesv2_client(assume_role(metadata_server))
    message_id = send(client, "Someone <someone@example.org>")

    [sent] = moto.sent_messages(region=REGION)
    assert sent.message_id == message_id
    assert sent.source == "sender@example.com"
    assert sent.destinations == ["Someone <someone@example.org>"]
    assert sent.raw_data is not None
    assert "Subject: hi" in sent.raw_data
    assert fault_proxy.count("sts_web_identity", "forwarded") == 1
    assert fault_proxy.count("ses_send", "forwarded") == 1


def test_unverified_sender_is_rejected(
    aws_env: MotoServer, metadata_server: MetadataServer
) -> None:
    client = sesv2_client(assume_role(metadata_server))
    with pytest.raises(ClientError) as caught:
        client.send_email(
            FromEmailAddress="someone@unverified.test",
            Destination={"ToAddresses": ["rcpt@example.org"]},
            Content={"Raw": {"Data": b"From: someone@unverified.test\r\n\r\nx"}},
        )
    assert caught.value.response["Error"]["Code"] == "MessageRejected"
    assert aws_env.sent_messages() == []


def test_injected_ses_throttling_is_a_client_error(
    fault_proxy: FaultProxy, moto: MotoServer, metadata_server: MetadataServer
) -> None:
    fault_proxy.add_rule(fail_first(1, ses_error("TooManyRequestsException", 429, "slow down")))
    client = sesv2_client(assume_role(metadata_server))

    with pytest.raises(ClientError) as caught:
        send(client)
    error = caught.value.response
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["Error"]["Message"] == "slow down"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429

    send(client)  # only the first send fails
    assert len(moto.sent_messages()) == 1
    assert fault_proxy.count("ses_send", "injected") == 1


def test_fail_every_is_deterministic(
    fault_proxy: FaultProxy, metadata_server: MetadataServer
) -> None:
    fault_proxy.add_rule(fail_every(3, ses_error("ThrottlingException", 400)))
    client = sesv2_client(assume_role(metadata_server))
    outcomes = []
    for _ in range(6):
        try:
            send(client)
            outcomes.append("ok")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])
    assert outcomes == ["ok", "ok", "ThrottlingException"] * 2


def test_sts_error_and_expiration_rewrite(
    fault_proxy: FaultProxy, metadata_server: MetadataServer
) -> None:
    fault_proxy.add_rule(fail_first(1, sts_error("InvalidIdentityToken", 400, "bad token")))
    fault_proxy.add_rewriter(sts_expiration_in(120))

    with pytest.raises(ClientError) as caught:
        assume_role(metadata_server)
    assert caught.value.response["Error"]["Code"] == "InvalidIdentityToken"

    expiration = assume_role(metadata_server)["Expiration"]
    remaining = expiration - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=100) < remaining <= dt.timedelta(seconds=120)


@pytest.mark.parametrize(
    ("drop", "error"),
    [(connection_reset(), ConnectionClosedError), (hang_up(), ConnectionClosedError)],
    ids=["reset", "hangup"],
)
def test_dropped_connections_surface_as_connection_errors(
    fault_proxy: FaultProxy,
    metadata_server: MetadataServer,
    drop: Any,
    error: type[Exception],
) -> None:
    fault_proxy.add_rule(fail_first(1, on_ses_send(drop)))
    client = sesv2_client(assume_role(metadata_server))
    with pytest.raises(error):
        send(client)
    send(client)


def test_unconfigured_aws_client_stays_on_loopback() -> None:
    """The conftest safety net: no AWS_ENDPOINT_URL_* set means a closed local port."""
    sts = boto3.client("sts", region_name=REGION, config=NO_RETRIES)
    assert sts.meta.endpoint_url == "http://127.0.0.1:9"
    with pytest.raises(EndpointConnectionError):
        sts.assume_role_with_web_identity(
            RoleArn=ROLE_ARN, RoleSessionName="x-session", WebIdentityToken="token"
        )
