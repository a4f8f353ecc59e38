# Google identities and what each may do. Every grant is on a single resource; nothing is
# granted project-wide. The one project binding, the worker's on the ledger database, carries
# an IAM condition that admits that database alone (see ledger_user_worker).

# The worker runs as this account. AWS trusts its unique id (aws.tf); it may publish results
# and dead letters, pull its own subscriptions (pull mode), read the configuration bucket, and
# read and write documents in the ledger database.
resource "google_service_account" "worker" {
  account_id   = var.worker_service_account_id
  display_name = "email-worker"
  description  = "Runs the email worker on Cloud Run; trusted by the AWS roles that send each service's email."

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic_iam_member" "results_publisher_worker" {
  project = google_pubsub_topic.results.project
  topic   = google_pubsub_topic.results.name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.worker.member
}

# The worker forwards requests that can never succeed to the dead-letter topic itself.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher_worker" {
  project = google_pubsub_topic.dead_letter.project
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.worker.member
}

# Pull mode: the worker pulls every worker subscription (its services', and the replays).
resource "google_pubsub_subscription_iam_member" "worker_subscriber_worker" {
  for_each = { for key, subscription in google_pubsub_subscription.worker : key => subscription if !local.push_mode }

  project      = each.value.project
  subscription = each.value.name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.worker.member
}

moved {
  from = google_pubsub_subscription_iam_member.worker_subscriber_worker[0]
  to   = google_pubsub_subscription_iam_member.worker_subscriber_worker["shared"]
}

resource "google_storage_bucket_iam_member" "config_viewer_worker" {
  bucket = google_storage_bucket.config.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.worker.member
}

# Attachments by reference (attachments.tf): read access to the objects under each service's
# attachment prefixes and nothing else in their buckets. Cloud Storage checks an object read
# against projects/_/buckets/BUCKET/objects/NAME, so the condition admits exactly the names
# under the prefix; listing (a bucket-level permission) never matches it.
resource "google_storage_bucket_iam_member" "attachment_viewer_worker" {
  for_each = local.attachment_grants

  bucket = each.value.bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.worker.member

  condition {
    title       = "email-attachments-${substr(sha256(each.key), 0, 16)}"
    description = "Attachments under one service's prefix"
    expression  = each.value.expression
  }
}

# Firestore databases have no IAM policy of their own: access to one database is a project
# binding with an IAM condition on the database's resource name, which is how Firestore scopes
# access per database. Firestore checks document reads and writes against the database
# (projects/P/databases/D), so the condition admits them there and nowhere else; the role's
# project-level permissions (such as listing databases) never match it.
resource "google_project_iam_member" "ledger_user_worker" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.worker.member

  condition {
    title       = "email-worker ledger database only"
    description = "Documents of the Firestore database ${google_firestore_database.ledger.name} only."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${google_firestore_database.ledger.name}\""
  }
}

# Pub/Sub signs push requests as this account (push mode). It may only invoke the service.
resource "google_service_account" "push" {
  count = local.push_mode ? 1 : 0

  account_id   = var.push_service_account_id
  display_name = "email-worker push"
  description  = "Identity of Pub/Sub push requests to the email worker; may only invoke that service."

  depends_on = [google_project_service.enabled]
}

resource "google_cloud_run_v2_service_iam_member" "invoker_push" {
  count = local.push_mode ? 1 : 0

  project  = google_cloud_run_v2_service.worker[0].project
  location = google_cloud_run_v2_service.worker[0].location
  name     = google_cloud_run_v2_service.worker[0].name
  role     = "roles/run.invoker"
  member   = google_service_account.push[0].member
}

# The Pub/Sub service agent mints the push OIDC tokens as the push account.
resource "google_service_account_iam_member" "push_token_creator_pubsub_agent" {
  count = local.push_mode ? 1 : 0

  service_account_id = google_service_account.push[0].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}
