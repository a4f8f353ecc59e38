# Pub/Sub topology: requests in, results out, dead letters aside.
#
#   email-requests ──► email-requests-worker ──► worker ──► email-results
#                            │ (max_delivery_attempts)  └──► email-requests-dead-letter
#                            └──────────────────────────────► email-requests-dead-letter
#                                                                └─► email-requests-dead-letter-ops

resource "google_pubsub_topic" "requests" {
  name         = var.pubsub_names.requests_topic
  kms_key_name = var.kms_key_name

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "results" {
  name         = var.pubsub_names.results_topic
  kms_key_name = var.kms_key_name

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "dead_letter" {
  name         = var.pubsub_names.dead_letter_topic
  kms_key_name = var.kms_key_name

  depends_on = [google_project_service.enabled]
}

# The worker's subscription: pushed to the Cloud Run service, or pulled by it.
resource "google_pubsub_subscription" "worker" {
  name  = var.pubsub_names.worker_subscription
  topic = google_pubsub_topic.requests.id

  ack_deadline_seconds       = var.ack_deadline_seconds
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
  # subscription in place and keeps its backlog.
  dynamic "push_config" {
    for_each = local.push_mode ? [local.push_endpoint] : []
    content {
      push_endpoint = push_config.value

      oidc_token {
        service_account_email = one(google_service_account.push[*].email)
        audience              = local.push_audience
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.retry_minimum_backoff_seconds <= var.retry_maximum_backoff_seconds
      error_message = "retry_minimum_backoff_seconds must not exceed retry_maximum_backoff_seconds."
    }
  }

  # Dead-lettering works from the first delivery only once the service agent may publish.
  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher_pubsub_agent]
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

# --- What dead-letter forwarding needs: the Pub/Sub service agent publishes the dead letter
# --- and acknowledges it on the source subscription.

resource "google_pubsub_topic_iam_member" "dead_letter_publisher_pubsub_agent" {
  project = google_pubsub_topic.dead_letter.project
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "worker_subscriber_pubsub_agent" {
  project      = google_pubsub_subscription.worker.project
  subscription = google_pubsub_subscription.worker.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# --- Who else may use the topology.

resource "google_pubsub_topic_iam_member" "requests_publisher" {
  for_each = toset(var.request_publishers)

  project = google_pubsub_topic.requests.project
  topic   = google_pubsub_topic.requests.name
  role    = "roles/pubsub.publisher"
  member  = each.key
}

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
