"""Reading SES's sending quota through a service's role session, against the SES stand-in
that enforces one as SES does (bench/ses_quota.py)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from bench.ses_standin import SesStandIn
from worker.sending.errors import ConfigurationError, ThrottledError
from worker.sending.quota import QuotaGroup, SendQuota, quota_group
from worker.sending.ses_session import Session
from worker.sending.testing import RecordingSession

ROLE = "arn:aws:iam::123456789012:role/email-sender"


def session() -> Session:
    return Session(ROLE, aws_region="eu-west-2")


def test_the_quota_is_read_through_the_services_role_session(ses_standin: SesStandIn) -> None:
    assert ses_standin.quota is not None
    ses_standin.quota.set_rate(200)
    ses_standin.quota.set_daily_cap(50_000)

    reader = session().quota_reader()

    assert reader[0] == QuotaGroup("123456789012", "eu-west-2")
    assert reader[1]() == SendQuota(200, 50_000, 0)
    assert ses_standin.sts_calls == 1  # the role's own credentials


def test_the_quota_counts_what_was_sent_in_the_last_24_hours(ses_standin: SesStandIn) -> None:
    sender = session()
    for _ in range(3):
        sender.send_email(_message())
    assert sender.quota_reader()[1]().sent_last_24_hours == 3


def test_a_send_over_the_rate_is_classified_as_throttled(ses_standin: SesStandIn) -> None:
    assert ses_standin.quota is not None
    ses_standin.quota.set_rate(0.05)  # one recipient every 20 s: botocore's retries are refused
    sender = session()
    sender.send_email(_message())

    with pytest.raises(ThrottledError, match="Maximum sending rate exceeded") as caught:
        sender.send_email(_message())
    assert caught.value.provider_code == "Throttling"


def test_a_send_over_the_daily_cap_is_classified_as_throttled_by_the_daily_quota(
    ses_standin: SesStandIn,
) -> None:
    assert ses_standin.quota is not None
    ses_standin.quota.set_daily_cap(1)
    sender = session()
    sender.send_email(_message())

    with pytest.raises(ThrottledError, match="Daily message quota exceeded"):
        sender.send_email(_message())


def test_an_account_without_a_daily_limit_has_none() -> None:
    answer = {"SendQuota": {"Max24HourSend": -1, "MaxSendRate": 14, "SentLast24Hours": 3}}
    assert SendQuota.from_answer(answer) == SendQuota(14, None, 3)


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"SendQuota": None},
        {"SendQuota": {"Max24HourSend": 200}},
        {"SendQuota": {"MaxSendRate": "fast"}},
        {"SendQuota": {"MaxSendRate": 0}},
        {"SendQuota": {"MaxSendRate": 1, "SentLast24Hours": -1}},
    ],
)
def test_an_answer_without_a_usable_quota_is_a_configuration_error(answer: object) -> None:
    with pytest.raises(ConfigurationError, match="SendQuota"):
        SendQuota.from_answer(answer)  # type: ignore[arg-type]


def test_the_quota_group_is_the_roles_account_in_the_sessions_region() -> None:
    assert str(quota_group(ROLE, "us-east-1")) == "123456789012/us-east-1"


def test_a_role_arn_without_an_account_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="names no AWS account"):
        quota_group("arn:aws:iam::role/email-sender", "eu-west-2")


def test_a_stand_in_session_cannot_tell_its_quota() -> None:
    assert RecordingSession().quota_reader() is None


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "billing@example.com"
    message["To"] = "alice@example.org"
    message["Subject"] = "Quota"
    message.set_content("Hello")
    return message
