"""The SES account's sending quota, as ``GetAccount`` reports it for one account and region.

SES limits each AWS account, in each region, to a maximum send rate (recipients per second)
and a number of recipients per rolling 24 hours. ``GetAccount`` answers both, and how many
were sent in the last 24 hours, to any principal allowed ``ses:GetAccount``: the worker asks
with the service's own role session. Its failures are classified like a send's
(:mod:`worker.sending.provider_errors`) and transient ones retried briefly.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from worker.sending.errors import ConfigurationError, EmailError
from worker.sending.provider_errors import classify_exception
from worker.sending.retry_policy import RetryPolicy

__all__ = ["QuotaGroup", "SendQuota", "quota_group", "read_send_quota"]

#: A quota read is retried briefly: the pacer keeps its last answer and asks again soon.
_READ_POLICY = RetryPolicy(max_attempts=3, deadline_s=5.0, initial_backoff_s=0.2, max_backoff_s=1)

# The account in a role ARN: arn:<partition>:iam::<account>:role/<name>.
_ROLE_ACCOUNT = re.compile(r"^arn:[\w-]+:iam::(\d{12}):role/")


@dataclass(frozen=True)
class QuotaGroup:
    """What shares one quota: an AWS account in one region."""

    account: str
    region: str

    def __str__(self) -> str:
        return f"{self.account}/{self.region}"


@dataclass(frozen=True)
class SendQuota:
    """One ``GetAccount`` answer. ``max_24_hour_send`` None: SES set no daily limit (-1)."""

    max_send_rate_per_s: float
    max_24_hour_send: float | None
    sent_last_24_hours: float

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any]) -> SendQuota:
        """The quota in a ``GetAccount`` answer; ConfigurationError if it holds none."""
        quota = answer.get("SendQuota")
        try:
            rate = float(quota["MaxSendRate"])  # type: ignore[index]
            daily = float(quota.get("Max24HourSend", -1))  # type: ignore[union-attr]
            sent = float(quota.get("SentLast24Hours", 0))  # type: ignore[union-attr]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigurationError("SES GetAccount answered no usable SendQuota") from None
        if not (math.isfinite(rate) and rate > 0 and math.isfinite(sent) and sent >= 0):
            raise ConfigurationError("SES GetAccount answered an impossible SendQuota")
        return cls(
            max_send_rate_per_s=rate,
            max_24_hour_send=None if daily < 0 or not math.isfinite(daily) else daily,
            sent_last_24_hours=sent,
        )


def quota_group(role_arn: str, region: str) -> QuotaGroup:
    """The account and region a role's sends count against; ConfigurationError for a role
    ARN that names no account."""
    found = _ROLE_ACCOUNT.match(role_arn)
    if found is None:
        raise ConfigurationError("the service's role ARN names no AWS account")
    return QuotaGroup(found.group(1), region)


def read_send_quota(ses_client: Any, *, sleep: Callable[[float], None] = time.sleep) -> SendQuota:
    """Ask SES (a ``sesv2`` client of the account and region) for its quota.

    Raises:
        TransientError: SES or STS could not answer after a few quick attempts (throttled
            included: ``GetAccount`` has a rate limit of its own).
        PermanentError: refused (AccessDeniedError: the role lacks ``ses:GetAccount``).
    """

    def ask() -> SendQuota:
        try:
            answer = ses_client.get_account()
        except EmailError:
            raise
        except Exception as error:
            raise classify_exception(error) from error
        return SendQuota.from_answer(answer)

    result: SendQuota = _READ_POLICY.retrying(sleep=sleep)(ask)
    return result
