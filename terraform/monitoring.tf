# Alerts on Google Cloud (Cloud Monitoring): what each means and what to do is in
# docs/operations.md (Alerts) and in each policy's documentation, which the notification carries.
# The SES reputation alarms are in aws_alarms.tf.

locals {
  # The worker's subscriptions, as a Monitoring filter on pubsub_subscription resources: one
  # regular expression (tenancy.tf) for every service's, the replays' and the shared one, of
  # the same length however many services there are (Monitoring takes filters of up to 2,048
  # characters, which a list of names passes at a few dozen services).
  worker_subscriptions_filter = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = monitoring.regex.full_match(\"${local.worker_subscriptions_regex}\")"
  runbook                     = "See docs/operations.md, section Alerts, in the email-worker repository."

  # How long Cloud Monitoring is given to register a new log-based metric before an alert
  # policy may name it: until then it answers 404 "Cannot find metric(s)", which the provider
  # does not retry, and the first apply fails (terraform/README.md, First apply).
  log_metric_registration_wait = "180s"

  # The warning the worker logs when its outage breaker starts holding (breaker.py).
  outage_holding_message = "outage: downstream calls are failing for every service; holding new work"

  # The warning the events reader logs when its reputation breaker pauses a service
  # (worker/events/reputation.py).
  reputation_breaker_message = "reputation breaker tripped: service paused"
}

# Dead letters nobody has looked at: they are kept dead_letter_retention_seconds, then lost.
resource "google_monitoring_alert_policy" "dead_letters_waiting" {
  display_name          = "email-worker: dead letters waiting"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "A dead letter has waited more than ${var.alerts.dead_letter_age_hours} h"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter_ops.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.dead_letter_age_hours * 3600
      duration        = "300s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    subject   = "email-worker: dead letters waiting"
    mime_type = "text/markdown"
    content   = "A request that cannot succeed has waited more than ${var.alerts.dead_letter_age_hours} hours on ${google_pubsub_subscription.dead_letter_ops.name}. Run `email-worker dlq list` to see why, fix the cause, then `email-worker dlq replay` or `dlq purge`. Dead letters are deleted after ${var.dead_letter_retention_seconds / 86400} days. ${local.runbook}"
  }

  depends_on = [google_project_service.enabled]
}

# Requests waiting: the worker is down, too slow, or throttled for longer than usual.
resource "google_monitoring_alert_policy" "requests_waiting" {
  display_name          = "email-worker: requests waiting"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "A request has waited more than ${var.alerts.request_age_minutes} min"
    condition_threshold {
      filter          = "${local.worker_subscriptions_filter} AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.request_age_minutes * 60
      duration        = "300s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    subject   = "email-worker: requests waiting"
    mime_type = "text/markdown"
    content   = "The oldest request on a worker subscription is more than ${var.alerts.request_age_minutes} minutes old: the worker is not keeping up (down, failing to start, or held back by the send rate or SES throttling). ${local.runbook}"
  }

  depends_on = [google_project_service.enabled]
}

# Push mode: answers that make Pub/Sub deliver again. 5xx are expected now and then (a
# transient failure is handed back with 503); a push answered after its ack deadline means
# the budget did not hold, and the request may be sent twice.
resource "google_monitoring_alert_policy" "push_failures" {
  count = local.push_mode ? 1 : 0

  display_name          = "email-worker: push deliveries failing"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "More than ${var.alerts.push_5xx_per_minute} push answers a minute are 5xx"
    condition_threshold {
      filter          = "${local.worker_subscriptions_filter} AND metric.type = \"pubsub.googleapis.com/subscription/push_request_count\" AND metric.labels.response_class = \"remote_server_5xx\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.push_5xx_per_minute / 60
      duration        = "600s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  # 4xx: a push refused before the worker handled it (Cloud Run's invoker check or audience, or
  # the worker's token and subscription checks), or SES throttling (429). A broken grant
  # refuses every push, so this fires within minutes rather than when the backlog has aged.
  conditions {
    display_name = "More than ${var.alerts.push_4xx_per_minute} push answers a minute are 4xx"
    condition_threshold {
      filter          = "${local.worker_subscriptions_filter} AND metric.type = \"pubsub.googleapis.com/subscription/push_request_count\" AND metric.labels.response_class = \"remote_server_4xx\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.push_4xx_per_minute / 60
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  conditions {
    display_name = "A push was answered after its ack deadline"
    condition_threshold {
      filter          = "${local.worker_subscriptions_filter} AND metric.type = \"pubsub.googleapis.com/subscription/push_request_count\" AND metric.labels.response_class = \"deadline_exceeded\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    subject   = "email-worker: push deliveries failing"
    mime_type = "text/markdown"
    content   = "The worker answers Pub/Sub's pushes with errors, or too late. 5xx: read the worker's logs (`request processed` lines with outcome retry, `cannot start`). 4xx: pushes refused before they were handled; check that the push service account still holds roles/run.invoker on the service and that the subscriptions' OIDC audience is one the service and the worker accept (`push request refused` in the worker's logs), or SES throttling (429). Answered after the ack deadline (${local.ack_deadline_s} s): a delivery outlasted the budget in terraform/budget.tf and may have been sent twice; check the SES and Pub/Sub latencies. ${local.runbook}"
  }

  depends_on = [google_project_service.enabled]
}

# The worker's own failures, from its `request processed` log lines (its Prometheus metrics
# stay inside each instance): requests that ended failed, and deliveries that found the
# request ledger unavailable (nothing can be sent then).
resource "google_logging_metric" "worker_failures" {
  name        = "email-worker/failures"
  description = "email-worker requests that ended failed, or found the request ledger unavailable, by error code."
  filter      = "jsonPayload.message = \"request processed\" AND (jsonPayload.outcome = \"failed\" OR jsonPayload.ledger = \"unavailable\")"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "error_code"
      value_type  = "STRING"
      description = "The request's error code (formats.md), or none."
    }
  }

  label_extractors = {
    error_code = "EXTRACT(jsonPayload.error_code)"
  }

  depends_on = [google_project_service.enabled]
}

# The alert below waits for Monitoring to register the metric (see log_metric_registration_wait):
# the wait starts again whenever the metric is created anew, and the policy reads the metric's
# name through it, so the policy is created or changed only after the wait.
resource "time_sleep" "worker_failures_metric_registered" {
  create_duration = local.log_metric_registration_wait

  triggers = {
    metric = google_logging_metric.worker_failures.name
  }
}

resource "google_monitoring_alert_policy" "worker_failures" {
  display_name          = "email-worker: requests failing"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "More than ${var.alerts.failed_requests_per_hour} failed requests in an hour"
    condition_threshold {
      filter          = "metric.type = \"logging.googleapis.com/user/${time_sleep.worker_failures_metric_registered.triggers["metric"]}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.failed_requests_per_hour
      duration        = "0s"

      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    subject   = "email-worker: requests failing"
    mime_type = "text/markdown"
    content   = "Requests end failed (SES refused them or kept failing), or the request ledger is unavailable. The metric's error_code label says which; the dead letters carry the details (`email-worker dlq list`). ${local.runbook}"
  }

  depends_on = [google_project_service.enabled]
}

# The outage breaker's trips (worker/processing/breaker.py): the worker logs one warning each
# time it starts holding new work because SES, STS or the ledger fail for every service.
resource "google_logging_metric" "outage_holding" {
  name        = "email-worker/outage-holding"
  description = "email-worker instances that started holding new work because SES, STS or the request ledger failed for every service."
  filter      = "jsonPayload.message = \"${local.outage_holding_message}\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.enabled]
}

resource "time_sleep" "outage_holding_metric_registered" {
  create_duration = local.log_metric_registration_wait

  triggers = {
    metric = google_logging_metric.outage_holding.name
  }
}

resource "google_monitoring_alert_policy" "outage_holding" {
  display_name          = "email-worker: holding through an outage"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "The worker started holding new work"
    condition_threshold {
      filter          = "metric.type = \"logging.googleapis.com/user/${time_sleep.outage_holding_metric_registered.triggers["metric"]}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    subject   = "email-worker: holding through an outage"
    mime_type = "text/markdown"
    content   = "SES, STS or the request ledger failed for every service, so the worker holds new work instead of spending delivery attempts: nothing is lost or dead-lettered meanwhile, and it resumes by itself once a probe gets through (`outage over` in its logs). Check SES's and STS's health in the region and the ledger's Firestore database. ${local.runbook}"
  }

  depends_on = [google_project_service.enabled]
}

# The reputation breaker's trips (worker/events/reputation.py): the events reader logs one
# warning each time it pauses a service whose bounce or complaint rate reached its threshold.
resource "google_logging_metric" "reputation_breaker" {
  name        = "email-worker/reputation-breaker"
  description = "Services the events reader's reputation breaker paused, by service."
  filter      = "jsonPayload.message = \"${local.reputation_breaker_message}\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "service_id"
      value_type  = "STRING"
      description = "The paused service."
    }
  }

  label_extractors = {
    service_id = "EXTRACT(jsonPayload.service_id)"
  }

  depends_on = [google_project_service.enabled]
}

resource "time_sleep" "reputation_breaker_metric_registered" {
  create_duration = local.log_metric_registration_wait

  triggers = {
    metric = google_logging_metric.reputation_breaker.name
  }
}

resource "google_monitoring_alert_policy" "reputation_breaker" {
  display_name          = "email-worker: reputation breaker paused a service"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "The reputation breaker paused a service"
    condition_threshold {
      filter          = "metric.type = \"logging.googleapis.com/user/${time_sleep.reputation_breaker_metric_registered.triggers["metric"]}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.service_id"]
      }
    }
  }

  documentation {
    subject   = "email-worker: reputation breaker paused a service"
    mime_type = "text/markdown"
    content   = "A service's hard-bounce or complaint rate reached the reputation breaker's threshold (EMAIL_WORKER_REPUTATION_*), so the events reader paused it before SES could review or pause the whole account. Its requests wait in Pub/Sub, none failed. `email-worker paused` shows the rates; find the cause with the service's owners (a bad list, a bug sending to wrong addresses), then `email-worker resume SERVICE`. Nothing resumes it by itself. ${local.runbook}"
  }

  depends_on = [google_project_service.enabled]
}

# SES throttling (worker/processing/handling.py's `request processed` line carries ses_calls
# and ses_throttled): the share of requests that called SES and met throttling at least once.
# The quota pacing keeps it near zero; a lasting share over 1% means the pacing is off, SES's
# quota dropped, or something else sends through the same account.
resource "google_logging_metric" "ses_requests" {
  name        = "email-worker/ses-requests"
  description = "email-worker requests that called SES SendEmail."
  filter      = "jsonPayload.message = \"request processed\" AND jsonPayload.ses_calls > 0"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "ses_throttled_requests" {
  name        = "email-worker/ses-throttled-requests"
  description = "email-worker requests of which SES throttled at least one SendEmail call."
  filter      = "jsonPayload.message = \"request processed\" AND jsonPayload.ses_throttled > 0"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.enabled]
}

resource "time_sleep" "ses_throttling_metrics_registered" {
  create_duration = local.log_metric_registration_wait

  triggers = {
    requests  = google_logging_metric.ses_requests.name
    throttled = google_logging_metric.ses_throttled_requests.name
  }
}

resource "google_monitoring_alert_policy" "ses_throttling" {
  display_name          = "email-worker: SES throttling"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "SES throttled more than ${var.alerts.ses_throttled_percent}% of the requests that called it, over 10 minutes"
    condition_threshold {
      filter             = "metric.type = \"logging.googleapis.com/user/${time_sleep.ses_throttling_metrics_registered.triggers["throttled"]}\""
      denominator_filter = "metric.type = \"logging.googleapis.com/user/${time_sleep.ses_throttling_metrics_registered.triggers["requests"]}\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alerts.ses_throttled_percent / 100
      duration           = "600s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      denominator_aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    subject   = "email-worker: SES throttling"
    mime_type = "text/markdown"
    content   = "SES answered more than ${var.alerts.ses_throttled_percent}% of the worker's requests with throttling. The worker retries them, paced, so nothing is lost, but the quota pacing is not keeping up: check that EMAIL_WORKER_QUOTA_PACING is on and the instances' heartbeats are written (email_worker_live_instances), whether SES's sending quota was lowered (aws sesv2 get-account), and whether anything else sends through the same SES account and region. ${local.runbook}"
  }

  depends_on = [google_project_service.enabled]
}
