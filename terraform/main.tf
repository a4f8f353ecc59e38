# Shared values and the project-level pieces every other file builds on.

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "enabled" {
  for_each = var.enable_apis ? toset([
    "artifactregistry.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ]) : toset([])

  project            = var.project_id
  service            = each.key
  disable_on_destroy = false
}

# Pub/Sub's service agent forwards dead letters and signs push requests. Google creates it
# lazily, so on a new project it may not exist yet when the grants to it are made: this asks
# for it first (the API is beta-only, hence google-beta).
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  project = var.project_id
  service = "pubsub.googleapis.com"

  depends_on = [google_project_service.enabled]
}

locals {
  # The audience of the Google ID tokens the worker presents to AWS STS. It is a constant of
  # the worker (TOKEN_AUDIENCE in worker/sending/identity.py), not a setting, so it is not a variable
  # here either: the AWS trust policies must pin exactly the value the worker asks for.
  sts_token_audience = "sts.amazonaws.com"

  # Pub/Sub's service agent, service-<project number>@gcp-sa-pubsub.iam.gserviceaccount.com.
  pubsub_service_agent = google_project_service_identity.pubsub.member

  # The port the image listens on (the Dockerfile's EXPOSE); Cloud Run passes it as $PORT.
  container_port = 8080

  # The service's deterministic URL (https://SERVICE-PROJECT_NUMBER.REGION.run.app). Pub/Sub
  # pushes to it; computing it rather than reading the service's uri lets the service depend
  # on the subscription and on every grant, so its first revision starts with all of them in
  # place. The check block in run.tf confirms Cloud Run serves this URL.
  service_url   = "https://${var.service_name}-${data.google_project.this.number}.${var.region}.run.app"
  push_endpoint = "${local.service_url}/pubsub/push"
  push_audience = coalesce(var.push_audience, "email-worker-push:${var.project_id}:${var.region}:${var.service_name}")
  # Each push subscription's tokens carry an audience of its own: the base above, then the
  # subscription's name. The worker gets the template ({subscription} is its placeholder, not
  # a terraform interpolation) and refuses a token whose audience is not that of the
  # subscription its envelope names, so a token captured from one subscription cannot be
  # replayed as another's (worker/transports/push_auth.py).
  push_audience_template = "${local.push_audience}:{subscription}"
  push_audiences = {
    for key, sub in local.worker_subscription_topics :
    key => replace(local.push_audience_template, "{subscription}", sub.name)
  }

  config_bucket_name = coalesce(var.config_bucket_name, "${var.project_id}-email-worker-config")
  # The template the worker fills in (EMAIL_WORKER_SERVICE_CONFIG_URL); {environment} and
  # {service_id} are the worker's placeholders, not terraform interpolations.
  service_config_url = "gs://${google_storage_bucket.config.name}/{environment}/{service_id}.json"

  # Per service: the From domains the worker accepts and AWS allows, and the SES condition
  # values (ses:FromAddress, matched with StringLike).
  allowed_from_domains = {
    for id, s in var.services : id => s.allowed_from_domains == null ? [s.sending_domain] : s.allowed_from_domains
  }
  allowed_from_patterns = {
    for id, s in var.services : id => distinct(concat(
      s.default_from_address == null ? [] : [s.default_from_address],
      [for d in local.allowed_from_domains[id] : "*@${d}"],
    ))
  }

  sending_domains = toset([for s in var.services : s.sending_domain])

  # Instances that may send at once: each gets its share of the account's SES rate (a stopped
  # pool, pull_instances = 0, has no share to compute).
  instance_count = local.push_mode ? var.max_instances : max(var.pull_instances, 1)

  # The worker's environment (see worker/config/settings.py). Null values are left out.
  managed_env = {
    GOOGLE_CLOUD_PROJECT            = var.project_id
    EMAIL_WORKER_ENVIRONMENT        = var.environment
    EMAIL_WORKER_SERVICE_CONFIG_URL = local.service_config_url
    EMAIL_WORKER_ALLOWED_SERVICES   = join(",", sort(keys(var.services)))
    EMAIL_WORKER_SERVICE_ID         = var.default_service_id
    # Where requests come from (tenancy.tf): the worker derives the service from the topic.
    EMAIL_WORKER_TENANCY              = var.tenancy
    EMAIL_WORKER_SERVICE_TOPIC        = var.pubsub_names.service_topic
    EMAIL_WORKER_SERVICE_SUBSCRIPTION = var.pubsub_names.service_subscription
    EMAIL_WORKER_REPLAY_TOPIC         = google_pubsub_topic.replays.name
    EMAIL_WORKER_REPLAY_SUBSCRIPTION  = google_pubsub_subscription.worker["replay"].name
    EMAIL_WORKER_SUBSCRIPTION         = local.shared_subscription
    EMAIL_WORKER_REQUESTS_TOPIC       = one(google_pubsub_topic.requests[*].name)
    # Results and dead letters.
    EMAIL_WORKER_RESULTS_TOPIC            = google_pubsub_topic.results.name
    EMAIL_WORKER_DEAD_LETTER_TOPIC        = google_pubsub_topic.dead_letter.name
    EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION = google_pubsub_subscription.dead_letter_ops.name
    EMAIL_WORKER_LOG_LEVEL                = var.log_level
    # Same variable as the subscriptions' dead-letter policy: the worker need not read a
    # subscription (and so needs no permission to) to know its last delivery attempt.
    EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
    EMAIL_WORKER_PUSH_AUDIENCE         = local.push_mode ? local.push_audience_template : null
    EMAIL_WORKER_PUSH_SERVICE_ACCOUNT  = one(google_service_account.push[*].email)
    # One subscription to accept pushes from only in shared tenancy; per-service, the worker
    # knows its subscriptions from the templates above.
    EMAIL_WORKER_PUSH_SUBSCRIPTION = local.push_mode ? local.shared_subscription : null
    # The budget (budget.tf): the worker's own timing settings, the ack deadline it checks them
    # against at start, and a ledger claim that outlasts a delivery.
    EMAIL_WORKER_SEND_DEADLINE_S     = tostring(var.send_deadline_seconds)
    EMAIL_WORKER_PUBLISH_TIMEOUT_S   = tostring(var.publish_timeout_seconds)
    EMAIL_WORKER_PUSH_ACK_DEADLINE_S = local.push_mode ? tostring(local.ack_deadline_s) : null
    EMAIL_WORKER_LEDGER_CLAIM_S      = tostring(local.ledger_claim_s)
    # As many threads as Cloud Run hands the instance requests: no push waits for a thread.
    EMAIL_WORKER_CONCURRENCY = tostring(var.request_concurrency)
    # Every instance may run at once: each gets its share of the account's rate.
    EMAIL_WORKER_SEND_RATE_PER_S = var.ses_max_send_rate_per_s == null ? null : tostring(var.ses_max_send_rate_per_s / local.instance_count)
    # The ledger's own database (ledger.tf), named explicitly: the worker's default is a local
    # SQLite file, and plain "firestore" would mean the project's (default) database, to which
    # the worker has no access. Records live as long as the TTL policy there lets them.
    EMAIL_WORKER_LEDGER             = "firestore://${google_firestore_database.ledger.name}"
    EMAIL_WORKER_LEDGER_RETENTION_S = tostring(var.ledger_retention_seconds)
    EMAIL_WORKER_LEDGER_TAKEOVER    = var.ledger_takeover
    # A dead delivery's claim waits this long for SES's Send event (recorded by the events
    # reader) before it is taken over; without the reader there is nothing to wait for.
    EMAIL_WORKER_SEND_EVENT_WAIT_S = var.events_enabled ? "120" : "0"
  }
  worker_env = merge(var.extra_env, { for name, value in local.managed_env : name => value if value != null })

  # The shared subscription's name (shared tenancy), or null.
  shared_subscription = one([for key, subscription in google_pubsub_subscription.worker : subscription.name if key == "shared"])
}
