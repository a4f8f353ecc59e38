# The worker on Cloud Run, as the worker service account:
#   push: a service running `email-worker serve`, scaled by Cloud Run on the pushes it gets,
#         reachable only from inside the project (Pub/Sub push counts as inside);
#   pull: a worker pool running `email-worker pull` on a fixed number of instances. Pull
#         workers keep their CPU busy only as fast as the send rate allows, so nothing that
#         scales on CPU or requests would add instances: the count is set, not guessed.

resource "google_cloud_run_v2_service" "worker" {
  count = local.push_mode ? 1 : 0

  name                = var.service_name
  location            = var.region
  ingress             = var.ingress
  deletion_protection = var.deletion_protection

  # Push requests carry an OIDC token for their subscription's audience; Cloud Run admits
  # those (besides the service URL) and the worker checks that each matches its envelope.
  custom_audiences = sort(values(local.push_audiences))

  template {
    service_account = google_service_account.worker.email
    # Pub/Sub waits for the answer for the ack deadline; so may Cloud Run (budget.tf).
    timeout                          = "${local.ack_deadline_s}s"
    max_instance_request_concurrency = var.request_concurrency

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image
      # The image's ENTRYPOINT is `email-worker` and its CMD `serve`; said here too.
      args = ["serve"]

      ports {
        container_port = local.container_port
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        # CPU only while requests are in flight, unless the worker has work of its own between
        # them (scheduled requests falling due, the quota pacer's heartbeats).
        cpu_idle          = !var.push_cpu_always_allocated
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

  # The first revision starts only when its subscriptions, configuration, ledger database (its
  # name is in the environment) and permissions exist.
  depends_on = [
    google_pubsub_topic_iam_member.results_publisher_worker,
    google_pubsub_topic_iam_member.dead_letter_publisher_worker,
    google_storage_bucket_iam_member.config_viewer_worker,
    google_storage_bucket_object.service_config,
    google_firestore_database.ledger,
    google_project_iam_member.ledger_user_worker,
    terraform_data.settings_check,
  ]
}

# The address from before pull mode moved to a worker pool.
moved {
  from = google_cloud_run_v2_service.worker
  to   = google_cloud_run_v2_service.worker[0]
}

check "push_endpoint_is_served" {
  assert {
    condition     = alltrue([for service in google_cloud_run_v2_service.worker : contains(service.urls, local.service_url)])
    error_message = "Cloud Run does not serve ${local.service_url}, where Pub/Sub pushes requests: set the subscriptions' push endpoint to one of the service's urls."
  }
}

# Pull mode: pool instances stream from every worker subscription. There is no ingress: the
# worker serves no requests, and Cloud Run restarts an instance whose process exits.
resource "google_cloud_run_v2_worker_pool" "worker" {
  count = local.push_mode ? 0 : 1

  name                = var.service_name
  location            = var.region
  deletion_protection = var.deletion_protection

  # A fixed count, changed only by changing pull_instances (which also changes each
  # instance's share of the send rate, so the new revision rolls out with both). Manual scaling
  # is the worker pools' default mode, so scaling_mode is not set (google >= 7.18 shows no diff).
  scaling {
    manual_instance_count = var.pull_instances
  }

  template {
    service_account = google_service_account.worker.email

    containers {
      image = var.image
      args  = ["pull"]

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
      }

      # A worker pool gets no PORT from Cloud Run; with one, `email-worker pull` serves
      # /healthz and /readyz on it for the probes below (nothing outside the instance reaches it).
      dynamic "env" {
        for_each = merge(local.worker_env, { PORT = tostring(local.container_port) })
        content {
          name  = env.key
          value = env.value
        }
      }

      startup_probe {
        http_get {
          path = "/readyz"
          port = local.container_port
        }
        period_seconds    = 2
        timeout_seconds   = 1
        failure_threshold = 30
      }

      # Restarts an instance whose process lives on but no longer answers.
      liveness_probe {
        http_get {
          path = "/healthz"
          port = local.container_port
        }
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
      }
    }
  }

  # The first revision starts only when its subscriptions and every permission exist.
  depends_on = [
    google_pubsub_topic_iam_member.results_publisher_worker,
    google_pubsub_topic_iam_member.dead_letter_publisher_worker,
    google_pubsub_subscription_iam_member.worker_subscriber_worker,
    google_storage_bucket_iam_member.config_viewer_worker,
    google_storage_bucket_object.service_config,
    google_firestore_database.ledger,
    google_project_iam_member.ledger_user_worker,
    terraform_data.settings_check,
  ]
}
