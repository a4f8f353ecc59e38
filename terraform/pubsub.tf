# Pub/Sub topology: requests in, results out, dead letters aside (tenancy.tf says who may publish).
#
#   email-requests-<service> ──► email-requests-<service>-worker ─┐  (one pair per service)
#   email-replays ─────────────► email-replays-worker ────────────┼─► worker ──► email-results
#  (email-requests ────────────► email-requests-worker, shared) ──┘       └────► email-requests-dead-letter
#   every worker subscription, after max_delivery_attempts ────────────────────► email-requests-dead-letter
#                                                        email-requests-dead-letter ─► …-dead-letter-ops
#   email-results ─► email-results-<service> (filtered on attributes.service_id; one per service)

# Per-service tenancy: one topic per service, which only that service's publishers may use.
resource "google_pubsub_topic" "service" {
  for_each = local.service_topic_names

  name         = each.value
  kms_key_name = var.kms_key_name

  depends_on = [google_project_service.enabled]
}

# Shared tenancy only: one topic for every service, which trusts the service_id in each request.
resource "google_pubsub_topic" "requests" {
  count = local.per_service ? 0 : 1

  name         = var.pubsub_names.requests_topic
  kms_key_name = var.kms_key_name

  depends_on = [google_project_service.enabled]
}

# Operators' replays of dead letters; the worker sends one only if its ledger holds the request.
resource "google_pubsub_topic" "replays" {
  name         = var.pubsub_names.replay_topic
  kms_key_name = var.kms_key_name

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "results" {
  name         = var.pubsub_names.results_topic
  kms_key_name = var.kms_key_name

  depends_on = [google_project_service.enabled]
}

# Kept up to dead_letter_retention_seconds (31 days by default) whether or not anyone reads them.
resource "google_pubsub_topic" "dead_letter" {
  name                       = var.pubsub_names.dead_letter_topic
  kms_key_name               = var.kms_key_name
  message_retention_duration = "${var.dead_letter_retention_seconds}s"

  depends_on = [google_project_service.enabled]
}

locals {
  # Every subscription the worker receives requests from, by a key that says what it is:
  # "service:<id>" (per-service), "shared" (shared tenancy) or "replay".
  worker_subscription_topics = merge(
    { for id, topic in google_pubsub_topic.service : "service:${id}" => { name = local.service_subscription_names[id], topic = topic.id } },
    { for topic in google_pubsub_topic.requests : "shared" => { name = var.pubsub_names.worker_subscription, topic = topic.id } },
    { replay = { name = var.pubsub_names.replay_subscription, topic = google_pubsub_topic.replays.id } },
  )
}

# The worker's subscriptions, all alike: pushed to the Cloud Run service, or pulled by the
# worker pool.
resource "google_pubsub_subscription" "worker" {
  for_each = local.worker_subscription_topics

  name  = each.value.name
  topic = each.value.topic

  # Push: the request timeout, derived from the worker's budget (budget.tf).
  ack_deadline_seconds       = local.ack_deadline_s
  message_retention_duration = "${var.request_retention_seconds}s"

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = "${var.retry_minimum_backoff_seconds}s"
    maximum_backoff = "${var.retry_maximum_backoff_seconds}s"
  }

  # Never delete the subscription for inactivity (the default is after 31 idle days).
  expiration_policy {
    ttl = ""
  }

  # Without push_config the subscription is a pull subscription. Switching mode updates the
  # subscription in place and keeps its backlog. Each subscription's pushes carry its own
  # audience (main.tf, push_audiences), which the worker matches with the envelope's name.
  dynamic "push_config" {
    for_each = local.push_mode ? [local.push_endpoint] : []
    content {
      push_endpoint = push_config.value

      oidc_token {
        service_account_email = one(google_service_account.push[*].email)
        audience              = local.push_audiences[each.key]
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.retry_minimum_backoff_seconds <= var.retry_maximum_backoff_seconds
      error_message = "retry_minimum_backoff_seconds must not exceed retry_maximum_backoff_seconds."
    }
  }

  # Dead-lettering works from the first delivery only once the service agent may publish, and
  # a dead letter reaches only the subscriptions that exist when it is published: the
  # operators' subscription comes first (docs/operations.md).
  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher_pubsub_agent,
    google_pubsub_subscription.dead_letter_ops,
  ]
}

# The operators' view of the dead letters (read by `email-worker` dead-letter commands).
resource "google_pubsub_subscription" "dead_letter_ops" {
  name  = var.pubsub_names.dead_letter_subscription
  topic = google_pubsub_topic.dead_letter.id

  ack_deadline_seconds       = var.dead_letter_ack_deadline_seconds
  message_retention_duration = "${var.dead_letter_retention_seconds}s"

  expiration_policy {
    ttl = ""
  }
}

# Each service's results, and only its results: a subscription on the results topic filtered on
# the service_id attribute the worker sets on every result (EmailResult.pubsub_attributes in
# worker/formats/result.py), read by that service's publishers and by nobody else (below). A
# result the filter does not admit is never delivered to the subscription. Nobody but the
# deployer may attach subscriptions to the results topic, so a service cannot make an
# unfiltered one of its own.
resource "google_pubsub_subscription" "results" {
  for_each = local.results_subscription_names

  name   = each.value
  topic  = google_pubsub_topic.results.id
  filter = "attributes.service_id = \"${each.key}\""

  # A waiting client takes results as they come; one it has not acknowledged within this
  # long is delivered again.
  ack_deadline_seconds       = 60
  message_retention_duration = "${var.request_retention_seconds}s"

  expiration_policy {
    ttl = ""
  }
}

# Addresses from before per-service tenancy: a shared deployment keeps its topic, subscription
# and grants in place.
moved {
  from = google_pubsub_topic.requests
  to   = google_pubsub_topic.requests[0]
}

moved {
  from = google_pubsub_subscription.worker
  to   = google_pubsub_subscription.worker["shared"]
}

moved {
  from = google_pubsub_subscription_iam_member.worker_subscriber_pubsub_agent
  to   = google_pubsub_subscription_iam_member.worker_subscriber_pubsub_agent["shared"]
}

# --- What dead-letter forwarding needs: the Pub/Sub service agent publishes the dead letter
# --- and acknowledges it on the source subscription.

resource "google_pubsub_topic_iam_member" "dead_letter_publisher_pubsub_agent" {
  project = google_pubsub_topic.dead_letter.project
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "worker_subscriber_pubsub_agent" {
  for_each = google_pubsub_subscription.worker

  project      = each.value.project
  subscription = each.value.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# --- Who else may publish (tenancy.tf): a service on its own topic, operators on the replay
# --- topic, and in shared tenancy request_publishers on the shared topic.

resource "google_pubsub_topic_iam_member" "service_publisher" {
  for_each = local.service_publishers

  project = google_pubsub_topic.service[each.value.service].project
  topic   = google_pubsub_topic.service[each.value.service].name
  role    = "roles/pubsub.publisher"
  member  = each.value.member
}

resource "google_pubsub_topic_iam_member" "requests_publisher" {
  for_each = toset(local.shared_publishers)

  project = google_pubsub_topic.requests[0].project
  topic   = google_pubsub_topic.requests[0].name
  role    = "roles/pubsub.publisher"
  member  = each.key
}

resource "google_pubsub_topic_iam_member" "replay_publisher" {
  for_each = toset(local.replay_publishers)

  project = google_pubsub_topic.replays.project
  topic   = google_pubsub_topic.replays.name
  role    = "roles/pubsub.publisher"
  member  = each.key
}

# --- Who may read results: each service's publishers (request_publishers, in shared tenancy),
# --- on that service's results subscription only. Nobody holds a role on the results topic
# --- itself but the worker, which publishes there.

resource "google_pubsub_subscription_iam_member" "results_subscriber" {
  for_each = local.results_subscribers

  project      = google_pubsub_subscription.results[each.value.service].project
  subscription = google_pubsub_subscription.results[each.value.service].name
  role         = "roles/pubsub.subscriber"
  member       = each.value.member
}

# --- Who may read the dead letters.

resource "google_pubsub_subscription_iam_member" "dead_letter_reader" {
  for_each = toset(var.dead_letter_readers)

  project      = google_pubsub_subscription.dead_letter_ops.project
  subscription = google_pubsub_subscription.dead_letter_ops.name
  role         = "roles/pubsub.subscriber"
  member       = each.key
}

# The operators' commands check the subscription before reading it (pubsub.subscriptions.get).
resource "google_pubsub_subscription_iam_member" "dead_letter_viewer" {
  for_each = toset(var.dead_letter_readers)

  project      = google_pubsub_subscription.dead_letter_ops.project
  subscription = google_pubsub_subscription.dead_letter_ops.name
  role         = "roles/pubsub.viewer"
  member       = each.key
}
