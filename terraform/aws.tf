# AWS: SES identities with DKIM, and one role per service that only the worker's Google
# service account can assume and that can only send from that service's addresses.

# --- SES domain identities (one per distinct sending domain), signed with Easy DKIM. Publish
# --- the CNAME records of output ses_dkim_records in each domain's DNS to verify it.

resource "aws_sesv2_email_identity" "domain" {
  for_each = local.sending_domains

  email_identity = each.key

  dkim_signing_attributes {
    next_signing_key_length = var.ses_dkim_key_length
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
    sid       = "SendFromAllowedAddresses"
    effect    = "Allow"
    actions   = ["ses:SendEmail", "ses:SendRawEmail"]
    resources = [aws_sesv2_email_identity.domain[each.value.sending_domain].arn]

    condition {
      test     = "StringLike"
      variable = "ses:FromAddress"
      values   = local.allowed_from_patterns[each.key]
    }
  }
}

resource "aws_iam_role_policy" "send" {
  for_each = var.services

  name   = "ses-send"
  role   = aws_iam_role.service[each.key].id
  policy = data.aws_iam_policy_document.send[each.key].json
}
