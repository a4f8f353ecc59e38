# The worker on Cloud Run: `email-worker serve` (push) or `email-worker pull`, as the worker
# service account, reachable only from inside the project (Pub/Sub push counts as inside).

resource "google_cloud_run_v2_service" "worker" {
  name                = var.service_name
  location            = var.region
  ingress             = var.ingress
  deletion_protection = var.deletion_protection

  # Push requests carry an OIDC token for this audience; Cloud Run admits it (besides the
  # service URL) and the worker checks it again.
  custom_audiences = local.push_mode ? [local.push_audience] : null

  template {
    service_account                  = google_service_account.worker.email
    timeout                          = "${var.ack_deadline_seconds}s"
    max_instance_request_concurrency = var.request_concurrency

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image
      # The image's ENTRYPOINT is `email-worker`; its CMD (serve) is replaced by the mode.
      args = [local.push_mode ? "serve" : "pull"]

      ports {
        container_port = local.container_port
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        # A pull worker works between requests, so its CPU must stay allocated.
        cpu_idle          = local.push_mode
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.worker_env
        content {
          name  = env.key
          value = env.value
        }
      }

      startup_probe {
        http_get {
          path = "/readyz"
        }
        period_seconds    = 2
        timeout_seconds   = 1
        failure_threshold = 30
      }

      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.push_mode || var.min_instances >= 1
      error_message = "Pull mode needs min_instances >= 1: nothing wakes an idle pull worker."
    }
    precondition {
      condition     = var.min_instances <= var.max_instances
      error_message = "min_instances must not exceed max_instances."
    }
    precondition {
      condition     = var.default_service_id == null || contains(keys(var.services), coalesce(var.default_service_id, "-"))
      error_message = "default_service_id must be one of the keys of services."
    }
    precondition {
      # A request may be redelivered as long as the subscription keeps it: its record must
      # still be there, or the redelivery sends it again.
      condition     = var.ledger_retention_seconds >= var.request_retention_seconds
      error_message = "ledger_retention_seconds must be at least request_retention_seconds."
    }
  }

  # The first revision starts only when its subscription, configuration, ledger database (its
  # name is in the environment) and permissions exist.
  depends_on = [
    google_pubsub_topic_iam_member.results_publisher_worker,
    google_pubsub_topic_iam_member.dead_letter_publisher_worker,
    google_pubsub_subscription_iam_member.worker_subscriber_worker,
    google_storage_bucket_iam_member.config_viewer_worker,
    google_storage_bucket_object.service_config,
    google_firestore_database.ledger,
    google_project_iam_member.ledger_user_worker,
  ]
}

check "push_endpoint_is_served" {
  assert {
    condition     = !local.push_mode || contains(google_cloud_run_v2_service.worker.urls, local.service_url)
    error_message = "Cloud Run does not serve ${local.service_url}, where Pub/Sub pushes requests: set the subscription's push endpoint to one of ${jsonencode(google_cloud_run_v2_service.worker.urls)}."
  }
}
