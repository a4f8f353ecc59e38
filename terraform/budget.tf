# How long one delivery may take, and so the push ack deadline and the ledger claim: the same
# constants and sums as worker/config/budget.py, whose docstring explains each term.
# tests/test_budget.py evaluates these locals with terraform and checks they agree with it.
#
# This file holds locals only, computed from variables only, so that the tests can evaluate it
# with `terraform console` without the providers.

locals {
  budget = {
    # worker/sending/aws.py SES_CLIENT_CONFIG: connect and read timeouts of one SES call, and
    # botocore's retries after the first call (max_attempts 3: four calls).
    ses_connect_timeout_s = 5
    ses_read_timeout_s    = 20
    ses_retries           = 3
    # botocore's standard mode waits up to 2^i s before retry i+1, capped at 20 s, and up to
    # 5 s more when SES asks for it (x-amz-retry-after).
    botocore_backoff_cap_s = 20
    botocore_retry_after_s = 5
    # One request-ledger call (FirestoreLedger's timeout), and the rest of the work.
    ledger_call_s = 10
    margin_s      = 10
    # The downstream outage (SES, STS or the ledger down for everyone) a request's delivery
    # attempts must outlast: 30 minutes.
    outage_allowance_s = 1800
  }

  # The last SES attempt may start just before the send deadline and take this long: every
  # call botocore makes, and its backoff between them.
  ses_calls_s   = (local.budget.ses_retries + 1) * (local.budget.ses_connect_timeout_s + local.budget.ses_read_timeout_s)
  ses_backoff_s = sum([for retry in range(local.budget.ses_retries) : min(pow(2, retry), local.budget.botocore_backoff_cap_s) + local.budget.botocore_retry_after_s])
  ses_attempt_s = local.ses_calls_s + local.ses_backoff_s

  # With a send rate limit, that attempt may first wait up to the send deadline for its turn.
  send_rate_limited = var.ses_max_send_rate_per_s != null
  send_rate_wait_s  = local.send_rate_limited ? var.send_deadline_seconds : 0
  sending_s         = var.send_deadline_seconds + local.send_rate_wait_s + local.ses_attempt_s

  # A push must be answered within the ack deadline: the ledger's claim and completion, the
  # sending, the result and dead-letter publishes, and the margin.
  push_budget_s = 2 * local.budget.ledger_call_s + local.sending_s + 2 * var.publish_timeout_seconds + local.budget.margin_s

  # A claim must hold from before the first attempt until the result is stored.
  ledger_claim_s = ceil(local.sending_s + local.budget.ledger_call_s + local.budget.margin_s)

  # Push: the deadline given, or the budget; pull leases its messages itself (the worker's
  # EMAIL_WORKER_ACK_DEADLINE_S), so its subscriptions keep Pub/Sub's usual 60 s.
  push_mode        = var.delivery_mode == "push"
  ack_deadline_s   = coalesce(var.ack_deadline_seconds, local.push_mode ? ceil(local.push_budget_s) : 60)
  push_budget_fits = !local.push_mode || (local.ack_deadline_s >= local.push_budget_s && local.ack_deadline_s <= 600)

  # How long a request may keep being redelivered before it is dead-lettered: Pub/Sub's waits
  # between its delivery attempts, doubling from the retry policy's minimum backoff up to its
  # maximum (the time each delivery takes is left out, so the real span is longer). It must
  # outlast a dead delivery's claim, the wait for SES's Send event after it (the value main.tf
  # gives the worker as EMAIL_WORKER_SEND_EVENT_WAIT_S) and the outage allowance.
  send_event_wait_s   = var.events_enabled ? 120 : 0
  redelivery_span_s   = sum(concat([0], [for wait in range(var.max_delivery_attempts - 1) : min(var.retry_minimum_backoff_seconds * pow(2, wait), var.retry_maximum_backoff_seconds)]))
  redelivery_needed_s = local.ledger_claim_s + local.send_event_wait_s + local.budget.outage_allowance_s
  redelivery_fits     = local.redelivery_span_s >= local.redelivery_needed_s
}
