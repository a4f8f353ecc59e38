# The services' configuration documents, where the worker reads them:
#   gs://<bucket>/<environment>/<service_id>.json   (EMAIL_WORKER_SERVICE_CONFIG_URL)

resource "google_storage_bucket" "config" {
  name                        = local.config_bucket_name
  location                    = coalesce(var.config_bucket_location, var.region)
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      num_newer_versions = var.config_versions_retained
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  dynamic "logging" {
    for_each = var.config_access_log_bucket == null ? [] : [var.config_access_log_bucket]
    content {
      log_bucket = logging.value
    }
  }

  depends_on = [google_project_service.enabled]
}

# One document per service, in the format worker/sending/service_config.py reads.
resource "google_storage_bucket_object" "service_config" {
  for_each = var.services

  bucket        = google_storage_bucket.config.name
  name          = "${var.environment}/${each.key}.json"
  content_type  = "application/json"
  cache_control = "no-store"
  content = jsonencode({ for key, value in {
    service_id           = each.key
    service_role_arn     = aws_iam_role.service[each.key].arn
    aws_region           = var.aws_region
    default_from_address = each.value.default_from_address
    allowed_from_domains = local.allowed_from_domains[each.key]
    attachment_prefixes  = length(each.value.attachment_prefixes) > 0 ? each.value.attachment_prefixes : null
    ses_tenant           = each.value.ses_tenant
    reputation_policy    = each.value.reputation_policy
  } : key => value if value != null })
}
