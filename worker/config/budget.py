"""How long one delivery may take, and whether a push ack deadline and a ledger claim cover it.

Pub/Sub waits for a push answer only for the subscription's ack deadline (Cloud Run's request
timeout is set to the same value); then it delivers the message again, although the first
delivery may still be running. And a ledger claim that runs out before its delivery stores
the result lets another delivery take the request over and send it again. Both must
therefore last as long as the slowest delivery the worker allows itself, which is bounded by
its own settings and by the SES client's timeouts:

======================  ==============================================================
ledger calls            the claim before sending and the completion after it, each one
                        Firestore call of at most ``LEDGER_CALL_S``
send deadline           ``EMAIL_WORKER_SEND_DEADLINE_S``: no new attempt starts later
send rate wait          the last attempt may then wait up to the send deadline again for
                        its turn under ``EMAIL_WORKER_SEND_RATE_PER_S`` (only when set)
one SES attempt         that last attempt: botocore's first call and ``SES_RETRIES``
                        retries, each up to the connect and read timeouts, with
                        botocore's backoff between them (see :func:`ses_attempt_s`)
two publishes           the result, then the dead letter, each confirmed within
                        ``EMAIL_WORKER_PUBLISH_TIMEOUT_S``
margin                  ``MARGIN_S``: parsing, building the message, scheduling
======================  ==============================================================

The push ack deadline must cover all of it (:func:`push_budget_s`); the ledger claim must
cover what comes after it is taken, up to the completion (:func:`ledger_claim_s`).

Not counted: a message of more than 50 recipients sends one SES call per 50 (each later
batch retried for up to 15 s), and a Google token or STS credential refresh (about hourly)
runs inside an attempt; neither has a bound that fits in Pub/Sub's 600 s.

``terraform/budget.tf`` computes the same sums from the same constants, to derive the push
subscription's ack deadline and the claim it gives the worker; ``tests/test_budget.py``
checks that the constants match the SES client's configuration and that both formulas agree.
"""

from __future__ import annotations

import math

__all__ = [
    "BOTOCORE_BACKOFF_CAP_S",
    "BOTOCORE_RETRY_AFTER_S",
    "LEDGER_CALL_S",
    "MARGIN_S",
    "MAX_ACK_DEADLINE_S",
    "SES_CONNECT_TIMEOUT_S",
    "SES_READ_TIMEOUT_S",
    "SES_RETRIES",
    "ledger_claim_s",
    "push_budget_problem",
    "push_budget_s",
    "ses_attempt_s",
]

#: ``worker.sending.aws.SES_CLIENT_CONFIG``: connect and read timeouts of one SES call, and
#: its ``max_attempts``, which botocore counts as retries after the first call.
SES_CONNECT_TIMEOUT_S = 5.0
SES_READ_TIMEOUT_S = 20.0
SES_RETRIES = 3
#: botocore's standard retry mode waits up to 2**i s before retry i+1 (throttling; other
#: errors far less), capped at 20 s, and up to 5 s more when the answer asks for it
#: (``x-amz-retry-after``).
BOTOCORE_BACKOFF_CAP_S = 20.0
BOTOCORE_RETRY_AFTER_S = 5.0
#: The most one request-ledger call may take (``FirestoreLedger``'s ``timeout_s``).
LEDGER_CALL_S = 10.0
#: Everything else one delivery does: parsing, building the message, thread scheduling.
MARGIN_S = 10.0
#: The longest ack deadline Pub/Sub allows.
MAX_ACK_DEADLINE_S = 600


def ses_attempt_s() -> float:
    """The longest one SES attempt can take: every call botocore makes, and its backoff."""
    calls = SES_RETRIES + 1
    backoff = sum(
        min(2.0**retry, BOTOCORE_BACKOFF_CAP_S) + BOTOCORE_RETRY_AFTER_S
        for retry in range(SES_RETRIES)
    )
    return calls * (SES_CONNECT_TIMEOUT_S + SES_READ_TIMEOUT_S) + backoff


def _sending_s(*, send_deadline_s: float, send_rate_limited: bool) -> float:
    """From the first attempt to the end of the last: the deadline, the last attempt's wait
    for the send rate, and that attempt."""
    rate_wait_s = send_deadline_s if send_rate_limited else 0.0
    return send_deadline_s + rate_wait_s + ses_attempt_s()


def ledger_claim_s(*, send_deadline_s: float, send_rate_limited: bool) -> float:
    """How long a claim must last: it is taken before the first attempt and must still hold
    when the result is stored after the last."""
    sending = _sending_s(send_deadline_s=send_deadline_s, send_rate_limited=send_rate_limited)
    return sending + LEDGER_CALL_S + MARGIN_S


def push_budget_s(
    *, send_deadline_s: float, publish_timeout_s: float, send_rate_limited: bool
) -> float:
    """The longest one delivery can take, from the push request to its answer."""
    sending = _sending_s(send_deadline_s=send_deadline_s, send_rate_limited=send_rate_limited)
    return 2 * LEDGER_CALL_S + sending + 2 * publish_timeout_s + MARGIN_S


def push_budget_problem(
    *,
    ack_deadline_s: float,
    send_deadline_s: float,
    publish_timeout_s: float,
    send_rate_limited: bool,
) -> str | None:
    """Why ``ack_deadline_s`` cannot hold one delivery with these settings, or None if it can."""
    budget = push_budget_s(
        send_deadline_s=send_deadline_s,
        publish_timeout_s=publish_timeout_s,
        send_rate_limited=send_rate_limited,
    )
    if ack_deadline_s >= budget:
        return None
    needed = math.ceil(budget)
    parts = (
        f"{2 * LEDGER_CALL_S:g} s of ledger calls, the {send_deadline_s:g} s send deadline"
        + (", as long again waiting for the send rate" if send_rate_limited else "")
        + f", one more SES attempt of up to {ses_attempt_s():g} s, two publishes of up to "
        f"{publish_timeout_s:g} s and a {MARGIN_S:g} s margin"
    )
    if needed > MAX_ACK_DEADLINE_S:
        fix = (
            f"that exceeds Pub/Sub's {MAX_ACK_DEADLINE_S} s maximum: lower "
            "EMAIL_WORKER_SEND_DEADLINE_S or EMAIL_WORKER_PUBLISH_TIMEOUT_S"
        )
    else:
        fix = (
            f"give the push subscription an ack deadline (and Cloud Run a request timeout) of "
            f"at least {needed} s, or lower EMAIL_WORKER_SEND_DEADLINE_S or "
            "EMAIL_WORKER_PUBLISH_TIMEOUT_S"
        )
    return (
        f"EMAIL_WORKER_PUSH_ACK_DEADLINE_S={ack_deadline_s:g} is too short: one push delivery "
        f"may take up to {needed} s ({parts}), and Pub/Sub would deliver it again while it may "
        f"still be sending; {fix}"
    )
