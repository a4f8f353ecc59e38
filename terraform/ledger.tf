# The request ledger (worker/ledger): one Firestore document per request, claimed before the
# request is sent and holding its result afterwards, so that each request is sent once however
# often Pub/Sub or its publisher delivers it. The ledger has a database of its own, the only one
# the worker may use:
#
#   <ledger_database_id> / email-worker-requests / <service_id>:<sha256(request_id)>
#                          └─ statuses / <one document per message id and recipient>
#
# The statuses are written by `email-worker events` (events.tf) from SES's events.

locals {
  # DEFAULT_COLLECTION in worker/ledger/firestore_ledger.py: the worker has no setting for it.
  ledger_collection = "email-worker-requests"
  # STATUSES_COLLECTION there: the subcollection of each request's document that holds its
  # recipients' latest statuses. A field policy names a collection group, so this one covers
  # the statuses of every request.
  ledger_statuses_collection = "statuses"
  # The worker instances' heartbeats (worker/ledger/heartbeats.py).
  ledger_heartbeats_collection = "email-worker-instances"
  ledger_counts_collection     = "email-worker-send-counts"
  # The services' hourly outcome counters (worker/ledger/service_count_stores.py), which the
  # console's services page reads.
  ledger_service_counts_collection = "email-worker-service-counts"

  # The timestamps the worker writes in every record besides expire_at. The worker reads
  # records only by id and never queries them, so their single-field indexes serve nothing;
  # and indexed values that only grow, like these, cap the collection's writes at about 500 a
  # second. They are exempt from indexing, as is expire_at.
  ledger_unindexed_fields = toset(["created_at", "lease_until", "updated_at"])
}

resource "google_firestore_database" "ledger" {
  name        = var.ledger_database_id
  location_id = coalesce(var.ledger_location, var.region)
  type        = "FIRESTORE_NATIVE"
  # The edition whose prices terraform/README.md works out, and that lets fields be exempted.
  database_edition = "STANDARD"

  # Off by default (see the variable): a lost record costs a possible second send of one
  # request, not data, and 1 hour of versions is kept regardless.
  point_in_time_recovery_enablement = var.ledger_point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"

  # terraform destroy deletes the database (ABANDON would leave it behind, and a later apply
  # would fail to create it again), but only once deletion_protection is false and applied:
  # while the protection is on, Firestore refuses, as Cloud Run does for the service.
  delete_protection_state = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy         = "DELETE"

  dynamic "cmek_config" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = cmek_config.value
    }
  }

  depends_on = [google_project_service.enabled]
}

# Firestore deletes a record once its expire_at has passed: the worker sets it to its last
# write plus EMAIL_WORKER_LEDGER_RETENTION_S (ledger_retention_seconds). Deletion is lazy,
# usually within a day, and the worker treats a record past expire_at as gone meanwhile.
resource "google_firestore_field" "ledger_expire_at" {
  database   = google_firestore_database.ledger.name
  collection = local.ledger_collection
  field      = "expire_at"

  ttl_config {}

  # No single-field indexes: nothing queries the field (see ledger_unindexed_fields).
  index_config {}
}

# The instances' heartbeats expire the same way, seconds after an instance stops beating (the
# worker skips expired ones; the policy only keeps the collection from growing).
resource "google_firestore_field" "ledger_heartbeats_expire_at" {
  database   = google_firestore_database.ledger.name
  collection = local.ledger_heartbeats_collection
  field      = "expire_at"

  ttl_config {}

  # Heartbeats are queried by group, never by this field.
  index_config {}
}

# The recipients' statuses expire the same way: the events reader sets their expire_at to its
# last write plus the same retention. Without this policy they would be kept for ever (the
# worker ignores expired ones, but Firestore would still store and bill them).
resource "google_firestore_field" "ledger_statuses_expire_at" {
  database   = google_firestore_database.ledger.name
  collection = local.ledger_statuses_collection
  field      = "expire_at"

  ttl_config {}

  # Statuses are read by listing their request's subcollection, never queried by this field.
  index_config {}
}

# The services' hourly send counters (max_per_day, docs/scaling.md "Fair shares"), 8 shard
# documents per service and hour, carry an expire_at two days after their hour; read by
# document id, never queried.
resource "google_firestore_field" "ledger_counts_expire_at" {
  database   = google_firestore_database.ledger.name
  collection = local.ledger_counts_collection
  field      = "expire_at"

  ttl_config {}

  index_config {}
}

# The services' hourly outcome counters (the console's services page, docs/console.md), 8
# shard documents per service and hour, carry an expire_at eight days after their hour; read
# by document id, never queried.
resource "google_firestore_field" "ledger_service_counts_expire_at" {
  database   = google_firestore_database.ledger.name
  collection = local.ledger_service_counts_collection
  field      = "expire_at"

  ttl_config {}

  index_config {}
}

resource "google_firestore_field" "ledger_unindexed" {
  for_each = local.ledger_unindexed_fields

  database   = google_firestore_database.ledger.name
  collection = local.ledger_collection
  field      = each.key

  index_config {}
}

# The console's recipient page (`email-worker console`) finds what was sent to an address with
# one collection group query over the statuses: this ledger's, that recipient's, newest first
# (FirestoreLedger.sent_to). The index leads with the recipient, so its writes spread over
# addresses rather than piling onto the newest timestamp.
resource "google_firestore_index" "ledger_statuses_by_recipient" {
  database    = google_firestore_database.ledger.name
  collection  = local.ledger_statuses_collection
  query_scope = "COLLECTION_GROUP"

  fields {
    field_path = "ledger"
    order      = "ASCENDING"
  }
  fields {
    field_path = "recipient"
    order      = "ASCENDING"
  }
  fields {
    field_path = "occurred_at"
    order      = "DESCENDING"
  }
}
