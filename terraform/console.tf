# The web console (`email-worker console`, docs/console.md) as a Cloud Run service of its own,
# behind Identity-Aware Proxy enabled on the service itself (no load balancer), running as a
# service account of its own that may only:
#
#   - read documents in the ledger database (roles/datastore.viewer, conditioned on that
#     database as the worker's binding is);
#   - pull and acknowledge the operators' dead-letter subscription (roles/pubsub.subscriber:
#     a purge is an acknowledgement);
#   - publish to the topic replays go to: the replay topic, or with shared tenancy the requests
#     topic, where `email-worker dlq replay` publishes too.
#
# IAP admits the console_viewer_groups and console_operator_groups; the console then gives
# each signed-in address its role (console_access.tf). Nothing here exists unless
# console_enabled is true.

locals {
  console_service_name = "${var.service_name}-console"
  # IAP enabled on a Cloud Run service signs its assertions for this audience.
  console_iap_audience = "/projects/${data.google_project.this.number}/locations/${var.region}/services/${local.console_service_name}"
  # Where the console publishes replays (worker/console/sources.py, replay_topic).
  console_replay_topic = local.per_service ? google_pubsub_topic.replays.name : one(google_pubsub_topic.requests[*].name)

  # The settings the console shares with the CLI (the ledger, the dead-letter subscription,
  # where replays go), with the worker's values, and its own.
  console_shared_env = [
    "GOOGLE_CLOUD_PROJECT",
    "EMAIL_WORKER_LOG_LEVEL",
    "EMAIL_WORKER_PUBLISH_TIMEOUT_S",
    "EMAIL_WORKER_LEDGER",
    "EMAIL_WORKER_LEDGER_RETENTION_S",
    "EMAIL_WORKER_ALLOWED_SERVICES",
    "EMAIL_WORKER_TENANCY",
    "EMAIL_WORKER_SERVICE_TOPIC",
    "EMAIL_WORKER_SERVICE_SUBSCRIPTION",
    "EMAIL_WORKER_REPLAY_TOPIC",
    "EMAIL_WORKER_REPLAY_SUBSCRIPTION",
    "EMAIL_WORKER_SUBSCRIPTION",
    "EMAIL_WORKER_REQUESTS_TOPIC",
    "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION",
    # The services page shows each service's weight and max_per_day from its document.
    "EMAIL_WORKER_SERVICE_CONFIG_URL",
  ]
  console_managed_env = merge(
    { for name in local.console_shared_env : name => local.managed_env[name] },
    {
      EMAIL_WORKER_CONSOLE_HOST         = "0.0.0.0"
      EMAIL_WORKER_CONSOLE_IAP_AUDIENCE = local.console_iap_audience
      EMAIL_WORKER_CONSOLE_VIEWERS      = join(",", sort(local.console_viewers))
      EMAIL_WORKER_CONSOLE_OPERATORS    = join(",", sort(local.console_operators))
    },
  )
  console_env = { for name, value in local.console_managed_env : name => value if value != null && value != "" }
}

resource "google_project_service" "console_iap" {
  count = var.console_enabled && var.enable_apis ? 1 : 0

  project            = var.project_id
  service            = "iap.googleapis.com"
  disable_on_destroy = false
}

# IAP's service agent invokes the service for the users it admits; Google creates it lazily.
resource "google_project_service_identity" "iap" {
  count    = var.console_enabled ? 1 : 0
  provider = google-beta

  project = var.project_id
  service = "iap.googleapis.com"

  depends_on = [google_project_service.console_iap]
}

resource "google_service_account" "console" {
  count = var.console_enabled ? 1 : 0

  account_id   = var.console_service_account_id
  display_name = "email-worker console"
  description  = "Runs email-worker console on Cloud Run: reads the ledger, reads and acknowledges dead letters, publishes replays."

  depends_on = [google_project_service.enabled]
}

# Read-only on the ledger database: the same condition as the worker's binding (iam.tf).
resource "google_project_iam_member" "ledger_viewer_console" {
  count = var.console_enabled ? 1 : 0

  project = var.project_id
  role    = "roles/datastore.viewer"
  member  = google_service_account.console[0].member

  condition {
    title       = "email-worker ledger database only (console)"
    description = "Documents of the Firestore database ${google_firestore_database.ledger.name} only."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${google_firestore_database.ledger.name}\""
  }
}

# The services page reads the services' configuration documents (weight, max_per_day): read
# access to the documents the worker reads, which hold role ARNs and sender rules, no secret.
resource "google_storage_bucket_iam_member" "config_viewer_console" {
  count = var.console_enabled ? 1 : 0

  bucket = google_storage_bucket.config.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.console[0].member
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber_console" {
  count = var.console_enabled ? 1 : 0

  project      = google_pubsub_subscription.dead_letter_ops.project
  subscription = google_pubsub_subscription.dead_letter_ops.name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.console[0].member
}

resource "google_pubsub_topic_iam_member" "replay_publisher_console" {
  count = var.console_enabled ? 1 : 0

  project = var.project_id
  topic   = local.console_replay_topic
  role    = "roles/pubsub.publisher"
  member  = google_service_account.console[0].member
}

resource "google_cloud_run_v2_service" "console" {
  count = var.console_enabled ? 1 : 0
  # iap_enabled is in the google-beta provider only.
  provider = google-beta

  name                = local.console_service_name
  location            = var.region
  deletion_protection = var.deletion_protection
  # Browsers reach the run.app URL directly; IAP, enabled on the service, admits only the
  # groups below, and Cloud Run admits only IAP's service agent (run.invoker, below).
  ingress     = "INGRESS_TRAFFIC_ALL"
  iap_enabled = true

  template {
    service_account = google_service_account.console[0].email
    # A replay or purge of a large selection runs in the background after its POST answered
    # (its progress is streamed on /jobs/ID, kept in the instance's memory): the CPU stays
    # allocated, one instance serves every page, so that each job's page finds its job, and a
    # job's page may stay open for an hour.
    timeout = "3600s"
    scaling {
      min_instance_count = 0
      max_instance_count = 1
    }

    containers {
      image = var.image
      args  = ["console"]

      ports {
        container_port = local.container_port
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle = false
      }

      dynamic "env" {
        for_each = local.console_env
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  depends_on = [
    google_project_iam_member.ledger_viewer_console,
    google_pubsub_subscription_iam_member.dead_letter_subscriber_console,
    google_pubsub_topic_iam_member.replay_publisher_console,
    google_firestore_database.ledger,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "invoker_iap" {
  count = var.console_enabled ? 1 : 0

  project  = google_cloud_run_v2_service.console[0].project
  location = google_cloud_run_v2_service.console[0].location
  name     = google_cloud_run_v2_service.console[0].name
  role     = "roles/run.invoker"
  member   = google_project_service_identity.iap[0].member
}

# Who IAP lets through: the viewer and operator groups, on this service only.
resource "google_iap_web_cloud_run_service_iam_member" "console_accessor" {
  for_each = var.console_enabled ? toset(concat(var.console_viewer_groups, var.console_operator_groups)) : toset([])

  project                = google_cloud_run_v2_service.console[0].project
  location               = google_cloud_run_v2_service.console[0].location
  cloud_run_service_name = google_cloud_run_v2_service.console[0].name
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = each.key
}
