# What the events path (events.tf) is called, which SES events it routes, and how long the
# queue holds them.
#
# Like budget.tf, this file holds locals only, computed from variables only, so that the tests
# can evaluate it with `terraform console` without the providers (checks.tf checks them).

locals {
  # The EventBridge detail-type of each SES event type `email-worker events` carries
  # (worker/events/records.py). Other configured types (OPEN, CLICK, ...) are left on the bus
  # for whoever else wants them: the reader would only drop them.
  ses_event_detail_types = {
    SEND           = "Email Sent"
    DELIVERY       = "Email Delivered"
    BOUNCE         = "Email Bounced"
    COMPLAINT      = "Email Complaint Received"
    DELIVERY_DELAY = "Email Delivery Delayed"
    REJECT         = "Email Rejected"
  }
  ses_events_routed = distinct([
    for type in var.ses_event_types : local.ses_event_detail_types[type] if contains(keys(local.ses_event_detail_types), type)
  ])

  # What the rule matches: SES's events of those types about email sent with this deployment's
  # configuration set, which SES names in every event's mail.tags (as the tag
  # ses:configuration-set). Other senders' SES events in the account stay on the bus.
  ses_events_pattern = {
    source        = ["aws.ses"]
    "detail-type" = local.ses_events_routed
    detail = {
      mail = {
        tags = {
          "ses:configuration-set" = [var.ses_configuration_set_name]
        }
      }
    }
  }

  # Names: the AWS ones after the configuration set (one per deployment in an account and
  # region) and the role prefix, the worker pool after the worker's.
  ses_events_rule_name              = "${var.ses_configuration_set_name}-ses-events"
  ses_events_queue_name             = "${var.ses_configuration_set_name}-ses-events"
  ses_events_dead_letter_queue_name = "${var.ses_configuration_set_name}-ses-events-dlq"
  events_reader_role_name           = "${var.aws_role_name_prefix}events"
  events_reader_pool_name           = "${var.service_name}-events"

  # SQS's longest long poll, which the reader uses (MAX_WAIT_TIME_S in worker/events/reader.py).
  sqs_long_poll_s = 20
  # A received message stays hidden from other receives this long. It starts when the
  # receive returns, and must cover the batch's publishes (up to EMAIL_WORKER_PUBLISH_TIMEOUT_S),
  # the ledger writes and the delete; a long poll's worth and 40 s more are margin (90 s with
  # the defaults). Were it too short, a message would be received again while its first
  # receive is still being handled: a duplicate event, which consumers and the ledger
  # tolerate, but also a receive counted towards the dead-letter queue.
  ses_events_visibility_timeout_s = local.sqs_long_poll_s + var.publish_timeout_seconds + 40
  # Events wait this long for a reader (stopped, or failing) before SQS deletes them.
  ses_events_retention_s = 4 * 86400
  # SQS's longest. A standard queue keeps a message's first enqueue time when it moves to the
  # dead-letter queue, so this retention counts from when EventBridge delivered it.
  ses_events_dead_letter_retention_s = 14 * 86400
}
