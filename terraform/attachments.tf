# Attachments by reference: which Cloud Storage prefixes the worker may read attachments from
# (each service's attachment_prefixes, docs/formats.md). The worker's identity gets
# roles/storage.objectViewer on each prefix's bucket under an IAM condition that admits only
# objects under that prefix (iam.tf), and each service's configuration document lists its own
# prefixes, which the worker checks before reading anything (docs/security.md). Computed from
# variables only, so the tests evaluate it with terraform alone.

locals {
  # Every distinct prefix of every service, by its gs:// URI: the bucket, the object-name
  # path (ending in "/", or empty for the whole bucket), and the IAM condition on it.
  attachment_grants = {
    for prefix in distinct(flatten([for s in var.services : s.attachment_prefixes])) : prefix => {
      bucket = regex("^gs://([^/]+)/", prefix)[0]
      path   = regex("^gs://[^/]+/(.*)$", prefix)[0]
      expression = format(
        "resource.name.startsWith(\"projects/_/buckets/%s/objects/%s\")",
        regex("^gs://([^/]+)/", prefix)[0],
        regex("^gs://[^/]+/(.*)$", prefix)[0],
      )
    }
  }
}
