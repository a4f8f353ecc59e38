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

**How long a request may keep being redelivered.** A request that keeps failing transiently
is dead-lettered (and its requester told ``failed``) on the subscription's last delivery
attempt. Before that, it must be able to wait out the longest hold-ups it can meet:

======================  ==============================================================
the claim               a delivery that died holding the request's ledger claim makes
                        every redelivery find it ``busy`` until it expires
                        (``EMAIL_WORKER_LEDGER_CLAIM_S``)
the Send-event wait     then the takeover waits for SES's Send event
                        (``EMAIL_WORKER_SEND_EVENT_WAIT_S``)
an outage               SES, STS or the ledger down for everyone, the stated allowance
                        ``OUTAGE_ALLOWANCE_S`` (``EMAIL_WORKER_OUTAGE_ALLOWANCE_S``,
                        30 minutes): the pull worker holds its messages through an
                        outage without using attempts (:mod:`worker.processing.breaker`),
                        but a push answer always uses one, as does a pull worker's lease
                        that Pub/Sub or the client library gives up on
======================  ==============================================================

Pub/Sub waits between one delivery of a message and the next with an exponential backoff
from the retry policy's minimum to its maximum. The span the attempts cover
(:func:`redelivery_span_s`) counts those waits only, doubling from the minimum and capped at
the maximum, with the time each delivery itself takes left out (so the real span is longer):
``sum(min(min_backoff * 2**i, max_backoff) for i in range(max_delivery_attempts - 1))``. Pub/Sub
calls its backoff best effort, which is why the defaults leave room: 12 attempts with 10 s
to 600 s cover 10 + 20 + 40 + 80 + 160 + 320 + 5 x 600 = 3630 s, against 2092 s needed by
terraform's settings (a 172 s claim, 120 s for the Send event and 1800 s). ``pull`` and
``serve`` refuse to start when the span falls short (:func:`redelivery_problem`).

``terraform/budget.tf`` computes the same sums from the same constants, to derive the push
subscription's ack deadline, the claim it gives the worker and the span its subscriptions'
retry settings cover; ``tests/config/test_budget.py`` checks that the constants match the SES
client's configuration and that both formulas agree.
"""

from __future__ import annotations

import math

__all__ = [
    "BOTOCORE_BACKOFF_CAP_S",
    "BOTOCORE_RETRY_AFTER_S",
    "LEDGER_CALL_S",
    "MARGIN_S",
    "MAX_ACK_DEADLINE_S",
    "OUTAGE_ALLOWANCE_S",
    "SES_CONNECT_TIMEOUT_S",
    "SES_READ_TIMEOUT_S",
    "SES_RETRIES",
    "ledger_claim_s",
    "push_budget_problem",
    "push_budget_s",
    "redelivery_needed_s",
    "redelivery_problem",
    "redelivery_span_s",
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
#: The downstream outage a request's delivery attempts must outlast (30 minutes).
OUTAGE_ALLOWANCE_S = 1800.0


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


def redelivery_span_s(
    *, max_delivery_attempts: int, min_backoff_s: float, max_backoff_s: float
) -> float:
    """The least time from a message's first delivery to its last: Pub/Sub's waits between
    attempts, doubling from ``min_backoff_s`` up to ``max_backoff_s``."""
    return sum(
        min(min_backoff_s * 2.0**wait, max_backoff_s) for wait in range(max_delivery_attempts - 1)
    )


def redelivery_needed_s(
    *, claim_s: float, send_event_wait_s: float, outage_allowance_s: float
) -> float:
    """How long a request must be able to keep being redelivered: a dead delivery's claim,
    the wait for SES's Send event after it, and an outage."""
    return claim_s + send_event_wait_s + outage_allowance_s


def redelivery_problem(
    *,
    max_delivery_attempts: int,
    min_backoff_s: float,
    max_backoff_s: float,
    claim_s: float,
    send_event_wait_s: float,
    outage_allowance_s: float,
) -> str | None:
    """Why these retry settings dead-letter a request too soon, or None if they do not."""
    span = redelivery_span_s(
        max_delivery_attempts=max_delivery_attempts,
        min_backoff_s=min_backoff_s,
        max_backoff_s=max_backoff_s,
    )
    needed = redelivery_needed_s(
        claim_s=claim_s, send_event_wait_s=send_event_wait_s, outage_allowance_s=outage_allowance_s
    )
    if span >= needed:
        return None
    return (
        f"EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS={max_delivery_attempts} with backoffs of "
        f"{min_backoff_s:g}-{max_backoff_s:g} s (EMAIL_WORKER_RETRY_MIN_BACKOFF_S, "
        f"EMAIL_WORKER_RETRY_MAX_BACKOFF_S) dead-letters a request after about {span:g} s of "
        f"redeliveries, but it may need {needed:g} s: the {claim_s:g} s ledger claim, "
        f"{send_event_wait_s:g} s waiting for SES's Send event and an outage of "
        f"{outage_allowance_s:g} s (EMAIL_WORKER_OUTAGE_ALLOWANCE_S); give the subscription more "
        "delivery attempts or longer backoffs"
    )
