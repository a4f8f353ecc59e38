# AWS: SES identities with DKIM whose events go to EventBridge, and one role per service that
# only the worker's Google service account can assume and that can only send from that
# service's addresses.

# --- SES domain identities (one per distinct sending domain), signed with Easy DKIM. Publish
# --- the records of output ses_dns_records in each domain's DNS to verify it.

resource "aws_sesv2_email_identity" "domain" {
  for_each = local.sending_domains

  email_identity = each.key
  # Every send through the identity uses it, whatever the sender passes.
  configuration_set_name = aws_sesv2_configuration_set.events.configuration_set_name

  dkim_signing_attributes {
    next_signing_key_length = var.ses_dkim_key_length
  }
}

# --- Custom MAIL FROM (envelope sender) <ses_mail_from_subdomain>.<domain>: bounces come back
# --- there, and SPF passes for a subdomain of the From domain, so DMARC counts SPF as aligned
# --- (without it, the envelope sender is amazonses.com and DMARC rests on DKIM alone).

locals {
  # Suggested for every sending domain (output ses_dns_records): report only, to begin with.
  dmarc_record = join("; ", compact([
    "v=DMARC1",
    "p=none",
    var.dmarc_report_address == null ? "" : "rua=mailto:${var.dmarc_report_address}",
  ]))
}

resource "aws_sesv2_email_identity_mail_from_attributes" "domain" {
  for_each = aws_sesv2_email_identity.domain

  email_identity   = each.value.email_identity
  mail_from_domain = "${var.ses_mail_from_subdomain}.${each.key}"
  # Until its MX record resolves SES sends with its own MAIL FROM, rather than not at all.
  behavior_on_mx_failure = "USE_DEFAULT_VALUE"

  lifecycle {
    precondition {
      # The MAIL FROM domain receives bounces through SES and nothing else.
      condition     = !contains(flatten(values(local.allowed_from_domains)), "${var.ses_mail_from_subdomain}.${each.key}")
      error_message = "${var.ses_mail_from_subdomain}.${each.key} is a From domain of a service: choose another ses_mail_from_subdomain."
    }
  }
}

# --- Events: the identities' default configuration set publishes SES's events about each
# --- message (send, delivery, bounce, complaint, ...) to the account's default EventBridge
# --- bus. Each event carries the SES message id the worker reports in its result
# --- (mail.messageId) and the request's tags (mail.tags), so requesters can follow up.

resource "aws_sesv2_configuration_set" "events" {
  configuration_set_name = var.ses_configuration_set_name

  delivery_options {
    tls_policy = var.ses_tls_policy
  }

  reputation_options {
    reputation_metrics_enabled = true
  }

  sending_options {
    sending_enabled = true
  }

  # Addresses that bounced or complained are not sent to again (SES's suppression list): a
  # second bounce from the same address only harms the account's reputation.
  suppression_options {
    suppressed_reasons = ["BOUNCE", "COMPLAINT"]
  }
}

data "aws_cloudwatch_event_bus" "default" {
  name = "default"
}

resource "aws_sesv2_configuration_set_event_destination" "eventbridge" {
  configuration_set_name = aws_sesv2_configuration_set.events.configuration_set_name
  event_destination_name = "eventbridge"

  event_destination {
    enabled              = true
    matching_event_types = var.ses_event_types

    event_bridge_destination {
      # SES publishes only to the default bus; rules there route events onwards.
      event_bus_arn = data.aws_cloudwatch_event_bus.default.arn
    }
  }
}

# --- Trust: Google ID tokens of the worker service account, issued for AWS STS.
# For tokens from accounts.google.com, AWS maps the condition key accounts.google.com:aud to
# the token's azp claim (for a service account, its unique id), accounts.google.com:oaud to
# the token's aud claim, and accounts.google.com:sub to its sub (the unique id again).

data "aws_iam_policy_document" "trust_worker" {
  statement {
    sid     = "GoogleWorkerServiceAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = ["accounts.google.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:aud"
      values   = [google_service_account.worker.unique_id]
    }

    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:oaud"
      values   = [local.sts_token_audience]
    }

    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:sub"
      values   = [google_service_account.worker.unique_id]
    }
  }
}

resource "aws_iam_role" "service" {
  for_each = var.services

  name                 = "${var.aws_role_name_prefix}${each.key}"
  description          = "Sends email for service ${each.key} through SES; assumable only by the email worker's Google service account."
  assume_role_policy   = data.aws_iam_policy_document.trust_worker.json
  max_session_duration = var.aws_max_session_duration
  permissions_boundary = var.aws_permissions_boundary_arn

  lifecycle {
    precondition {
      condition     = length("${var.aws_role_name_prefix}${each.key}") <= 64
      error_message = "The role name ${var.aws_role_name_prefix}${each.key} is longer than AWS's 64 characters: shorten aws_role_name_prefix."
    }
  }
}

# --- Permissions: send, only through the service's own identity, only from its addresses.

data "aws_iam_policy_document" "send" {
  for_each = var.services

  statement {
    sid     = "SendFromAllowedAddresses"
    effect  = "Allow"
    actions = ["ses:SendEmail", "ses:SendRawEmail"]
    # A send is authorised against the identity and the configuration set it uses, and the
    # tenant it names (ses_tenants.tf), if the service has one.
    resources = concat([
      aws_sesv2_email_identity.domain[each.value.sending_domain].arn,
      aws_sesv2_configuration_set.events.arn,
    ], each.value.ses_tenant == null ? [] : [aws_sesv2_tenant.service[each.key].arn])

    condition {
      test     = "StringLike"
      variable = "ses:FromAddress"
      values   = local.allowed_from_patterns[each.key]
    }
  }

  # The worker paces itself to the account's quota (EMAIL_WORKER_QUOTA_PACING): GetAccount
  # reads it. It names no resource, so IAM allows it only on "*"; it reads, and changes nothing.
  statement {
    sid       = "ReadSendingQuota"
    effect    = "Allow"
    actions   = ["ses:GetAccount"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "send" {
  for_each = var.services

  name   = "ses-send"
  role   = aws_iam_role.service[each.key].id
  policy = data.aws_iam_policy_document.send[each.key].json
}
