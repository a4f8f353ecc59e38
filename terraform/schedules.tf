# Scheduled requests (worker/ledger/schedules.py, schedules_firestore.py): requests kept until
# their send_at, in the ledger's database, one document each:
#
#   <ledger_database_id> / email-worker-schedules / <service_id>:<sha256(request_id)>
#
# The dispatchers read "due before T" per shard, and `email-worker schedule list` per service;
# both are range reads on the composite indexes below, never scans. The shard (16 of them)
# spreads the due-time index so that neither the writes of many records nor the reads at one
# due time fall on a single growing stretch of it.

locals {
  # COLLECTION in worker/ledger/schedules_firestore.py.
  schedules_collection = "email-worker-schedules"
  # Fields nothing queries: the request's bytes (up to 1 MB), and values that only grow.
  schedules_unindexed_fields = toset([
    "content_hash", "created_at", "data", "lease_until", "message_id", "owner", "request_id",
  ])
}

# A record is deleted once the ledger's retention has passed since its due time.
resource "google_firestore_field" "schedules_expire_at" {
  database   = google_firestore_database.ledger.name
  collection = local.schedules_collection
  field      = "expire_at"

  ttl_config {}
  index_config {}
}

resource "google_firestore_field" "schedules_unindexed" {
  for_each = local.schedules_unindexed_fields

  database   = google_firestore_database.ledger.name
  collection = local.schedules_collection
  field      = each.key

  index_config {}
}

# The dispatchers' read: one shard's records still scheduled, due before a time.
resource "google_firestore_index" "schedules_due" {
  database   = google_firestore_database.ledger.name
  collection = local.schedules_collection

  fields {
    field_path = "shard"
    order      = "ASCENDING"
  }
  fields {
    field_path = "state"
    order      = "ASCENDING"
  }
  fields {
    field_path = "due_at"
    order      = "ASCENDING"
  }
}

# `email-worker schedule list SERVICE [--due-before T]`.
resource "google_firestore_index" "schedules_of_service" {
  database   = google_firestore_database.ledger.name
  collection = local.schedules_collection

  fields {
    field_path = "service_id"
    order      = "ASCENDING"
  }
  fields {
    field_path = "state"
    order      = "ASCENDING"
  }
  fields {
    field_path = "due_at"
    order      = "ASCENDING"
  }
}
