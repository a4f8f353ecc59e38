# Checks across variables, made when planning whatever the delivery mode: plan fails on any.
#
# Like budget.tf, tenancy.tf and events_routing.tf, this file reads variables and those files'
# locals only, so that the tests can plan it with terraform alone (terraform_data needs no
# provider download).

resource "terraform_data" "settings_check" {
  lifecycle {
    precondition {
      condition     = local.push_budget_fits
      error_message = "The push budget does not fit: one delivery may take up to ${ceil(local.push_budget_s)} s (budget.tf), but the ack deadline is ${local.ack_deadline_s} s, and Pub/Sub allows at most 600. Raise ack_deadline_seconds (or leave it null to derive it), or lower send_deadline_seconds or publish_timeout_seconds."
    }
    precondition {
      condition     = var.min_instances <= var.max_instances
      error_message = "min_instances must not exceed max_instances."
    }
    precondition {
      condition     = var.default_service_id == null || (!local.per_service && contains(keys(var.services), coalesce(var.default_service_id, "-")))
      error_message = "default_service_id applies to tenancy = \"shared\" only, and must be one of the keys of services."
    }
    precondition {
      condition     = local.per_service ? length(var.request_publishers) == 0 : alltrue([for s in var.services : length(s.publishers) == 0])
      error_message = "With tenancy = \"per-service\" give each service its publishers (services.<id>.publishers), not request_publishers; with \"shared\", request_publishers publish for every service and services' publishers do not apply."
    }
    precondition {
      # A request may be redelivered as long as the subscription keeps it: its record must
      # still be there, or the redelivery sends it again.
      condition     = var.ledger_retention_seconds >= var.request_retention_seconds
      error_message = "ledger_retention_seconds must be at least request_retention_seconds."
    }
    precondition {
      # tenancy.tf: with the names configured, not only the defaults variables.tf checks.
      condition     = length(local.colliding_service_ids) == 0
      error_message = "The service id(s) ${join(", ", local.colliding_service_ids)} would make a topic or subscription (pubsub_names.service_topic, service_subscription or results_subscription) named like one the worker uses for itself (${join(", ", local.worker_fixed_names)}): rename the service(s)."
    }
    precondition {
      # The events path (events.tf, events_routing.tf).
      condition     = !var.events_enabled || length(local.ses_events_routed) > 0
      error_message = "events_enabled needs ses_event_types to include at least one of ${join(", ", keys(local.ses_event_detail_types))}: the events reader carries no other."
    }
    precondition {
      condition     = !var.events_enabled || !contains(keys(var.services), "events")
      error_message = "The service id \"events\" would have the AWS role name of the events reader (${local.events_reader_role_name}): rename the service, or set events_enabled = false."
    }
    precondition {
      condition     = !var.events_enabled || (length(local.events_reader_role_name) <= 64 && length(local.ses_events_rule_name) <= 64)
      error_message = "The events reader's role name (${local.events_reader_role_name}) and the EventBridge rule's (${local.ses_events_rule_name}) must be at most 64 characters: shorten aws_role_name_prefix or ses_configuration_set_name."
    }
  }
}
