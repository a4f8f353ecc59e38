# SES's events back in Google Cloud (events_enabled):
#
#   SES (configuration set, aws.tf) ──► default EventBridge bus ──rule──► SQS <name>-ses-events
#       ──► `email-worker events` (a worker pool, as the events reader's own account, through
#           the <prefix>events role) ──► Pub/Sub email-events, and each recipient's status in
#           the request ledger
#   a message received ses_events_max_receive_count times ──► SQS <name>-ses-events-dlq
#
# The reader deletes a message only once its event is published and recorded; what it cannot
# read stays until the redrive policy moves it aside (docs/operations.md, Events dead-letter
# queue).

# The names, the routing and the queue's timings are computed from variables only, in
# events_routing.tf; the checks on them are in checks.tf.

locals {
  # The reader's environment: the settings it shares with the senders (project, logging,
  # publish timeout and the ledger), with the same values, and its own.
  events_reader_shared_env = [
    "GOOGLE_CLOUD_PROJECT",
    "EMAIL_WORKER_LOG_LEVEL",
    "EMAIL_WORKER_PUBLISH_TIMEOUT_S",
    "EMAIL_WORKER_LEDGER",
    "EMAIL_WORKER_LEDGER_CLAIM_S",
    "EMAIL_WORKER_LEDGER_RETENTION_S",
    "EMAIL_WORKER_LEDGER_TAKEOVER",
    # The reputation breaker pauses services as `email-worker pause` does: it needs to know
    # the services and their subscriptions (worker/app/relaying.py).
    "EMAIL_WORKER_ALLOWED_SERVICES",
    "EMAIL_WORKER_TENANCY",
    "EMAIL_WORKER_SERVICE_TOPIC",
    "EMAIL_WORKER_SERVICE_SUBSCRIPTION",
    "EMAIL_WORKER_REPLAY_TOPIC",
    "EMAIL_WORKER_REPLAY_SUBSCRIPTION",
    "EMAIL_WORKER_SUBSCRIPTION",
    "EMAIL_WORKER_REQUESTS_TOPIC",
  ]
  events_reader_managed_env = merge(
    { for name in local.events_reader_shared_env : name => local.managed_env[name] },
    {
      EMAIL_WORKER_SES_EVENTS_QUEUE_URL = one(aws_sqs_queue.ses_events[*].url)
      EMAIL_WORKER_SES_EVENTS_ROLE_ARN  = one(aws_iam_role.events_reader[*].arn)
      EMAIL_WORKER_EVENTS_TOPIC         = one(google_pubsub_topic.events[*].name)
    },
  )
  events_reader_env = merge(var.extra_env, { for name, value in local.events_reader_managed_env : name => value if value != null })

  # One thread waiting on SQS, Pub/Sub and Firestore: Cloud Run's usual smallest instance.
  events_reader_limits = {
    cpu    = "1"
    memory = "512Mi"
  }
}

# --- AWS: the rule, the queue and its dead-letter queue ---------------------------------------

resource "aws_cloudwatch_event_rule" "ses_events" {
  count = var.events_enabled ? 1 : 0

  name           = local.ses_events_rule_name
  description    = "SES's events about email-worker's sends, to the queue email-worker events reads."
  event_bus_name = data.aws_cloudwatch_event_bus.default.name
  event_pattern  = jsonencode(local.ses_events_pattern)
}

resource "aws_cloudwatch_event_target" "ses_events" {
  count = var.events_enabled ? 1 : 0

  rule           = aws_cloudwatch_event_rule.ses_events[0].name
  event_bus_name = aws_cloudwatch_event_rule.ses_events[0].event_bus_name
  target_id      = "sqs"
  arn            = aws_sqs_queue.ses_events[0].arn

  # EventBridge can deliver only once the queue's policy lets the rule send.
  depends_on = [aws_sqs_queue_policy.ses_events]
}

# Encrypted with SQS's own keys (SSE-SQS): EventBridge may send to it and the reader receive
# from it with no KMS grant, which a customer managed key would need for both.
resource "aws_sqs_queue" "ses_events" {
  count = var.events_enabled ? 1 : 0

  name                       = local.ses_events_queue_name
  sqs_managed_sse_enabled    = true
  visibility_timeout_seconds = local.ses_events_visibility_timeout_s
  message_retention_seconds  = local.ses_events_retention_s
  receive_wait_time_seconds  = local.sqs_long_poll_s

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.ses_events_dead_letter[0].arn
    maxReceiveCount     = var.ses_events_max_receive_count
  })
}

resource "aws_sqs_queue" "ses_events_dead_letter" {
  count = var.events_enabled ? 1 : 0

  name                      = local.ses_events_dead_letter_queue_name
  sqs_managed_sse_enabled   = true
  message_retention_seconds = local.ses_events_dead_letter_retention_s
}

# Only the events queue may use the dead-letter queue as its own.
resource "aws_sqs_queue_redrive_allow_policy" "ses_events_dead_letter" {
  count = var.events_enabled ? 1 : 0

  queue_url = aws_sqs_queue.ses_events_dead_letter[0].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.ses_events[0].arn]
  })
}

# The queue's policy grants one thing: EventBridge may send messages for that rule alone.
# Nothing is denied, so principals of the account keep what their own IAM policies give them
# (an operator moving messages back from the dead-letter queue needs sqs:SendMessage here).
data "aws_iam_policy_document" "ses_events_queue" {
  count = var.events_enabled ? 1 : 0

  statement {
    sid       = "SesEventsRuleOnly"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.ses_events[0].arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.ses_events[0].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "ses_events" {
  count = var.events_enabled ? 1 : 0

  queue_url = aws_sqs_queue.ses_events[0].id
  policy    = data.aws_iam_policy_document.ses_events_queue[0].json
}

# --- AWS: the reader's role -------------------------------------------------------------------

# Trusted only by the events reader's own Google service account (its ID tokens for STS, as
# the services' roles trust the worker's), and able only to take messages from the events
# queue and give them back or delete them. The reader's session is named email-worker-events
# (worker/events/sqs.py). The services' roles do not trust the reader's account, nor this
# role the worker's: the reader parses text from outside, and cannot send email.
data "aws_iam_policy_document" "trust_events_reader" {
  count = var.events_enabled ? 1 : 0

  statement {
    sid     = "GoogleEventsReaderServiceAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = ["accounts.google.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:aud"
      values   = [google_service_account.events_reader[0].unique_id]
    }

    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:oaud"
      values   = [local.sts_token_audience]
    }

    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:sub"
      values   = [google_service_account.events_reader[0].unique_id]
    }
  }
}

resource "aws_iam_role" "events_reader" {
  count = var.events_enabled ? 1 : 0

  name                 = local.events_reader_role_name
  description          = "Reads SES's events from the email-worker events queue; assumable only by the events reader's Google service account."
  assume_role_policy   = data.aws_iam_policy_document.trust_events_reader[0].json
  max_session_duration = var.aws_max_session_duration
  permissions_boundary = var.aws_permissions_boundary_arn
}

data "aws_iam_policy_document" "events_reader" {
  count = var.events_enabled ? 1 : 0

  statement {
    sid    = "ReadSesEventsQueue"
    effect = "Allow"
    # DeleteMessageBatch and ChangeMessageVisibilityBatch are authorised as these too.
    actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage"]
    resources = [aws_sqs_queue.ses_events[0].arn]
  }
}

resource "aws_iam_role_policy" "events_reader" {
  count = var.events_enabled ? 1 : 0

  name   = "ses-events-read"
  role   = aws_iam_role.events_reader[0].id
  policy = data.aws_iam_policy_document.events_reader[0].json
}

# --- Google Cloud: the events topic and the reader --------------------------------------------

# One event v1 message per SES event (docs/formats.md, Events). Consumers subscribe with their
# own subscriptions, filtered on attributes.service_id, request_id or event_type.
resource "google_pubsub_topic" "events" {
  count = var.events_enabled ? 1 : 0

  name         = var.pubsub_names.events_topic
  kms_key_name = var.kms_key_name

  depends_on = [google_project_service.enabled]
}

# --- Google Cloud: the reader's own identity ---------------------------------------------------

# The events reader runs as this account, not the worker's: it may publish to the events topic
# and read and write documents in the ledger database, and nothing else. Only the reader's AWS
# role trusts it.
resource "google_service_account" "events_reader" {
  count = var.events_enabled ? 1 : 0

  account_id   = var.events_reader_service_account_id
  display_name = "email-worker events reader"
  description  = "Runs email-worker events on Cloud Run; trusted only by the AWS role that reads the SES events queue."

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic_iam_member" "events_publisher_events_reader" {
  count = var.events_enabled ? 1 : 0

  project = google_pubsub_topic.events[0].project
  topic   = google_pubsub_topic.events[0].name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.events_reader[0].member
}

# The reputation breaker's pauses (worker/events/reputation.py): like `email-worker pause`, it
# reads each worker subscription it pauses and, in push mode, empties its push configuration
# (pull from then on). It never puts one back (that is `email-worker resume`, an operator's),
# so it needs no actAs on the push service account. A custom role with exactly those two
# permissions, granted on the worker subscriptions only.
resource "google_project_iam_custom_role" "subscription_pauser" {
  count = var.events_enabled ? 1 : 0

  project     = var.project_id
  role_id     = "emailWorkerSubscriptionPauser"
  title       = "email-worker subscription pauser"
  description = "Read a subscription and switch it from push to pull: the reputation breaker's pause."
  permissions = ["pubsub.subscriptions.get", "pubsub.subscriptions.update"]
}

resource "google_pubsub_subscription_iam_member" "pauser_events_reader" {
  for_each = var.events_enabled ? google_pubsub_subscription.worker : {}

  project      = each.value.project
  subscription = each.value.name
  role         = google_project_iam_custom_role.subscription_pauser[0].id
  member       = google_service_account.events_reader[0].member
}

# The recipients' statuses, in the ledger database and no other: the same conditional project
# binding as the worker's (iam.tf, ledger_user_worker), the narrowest grant Firestore's IAM
# has. Firestore has no IAM on a collection, so the reader could also write requests' records,
# as the worker can; Firestore's own security rules do not apply to server client libraries.
resource "google_project_iam_member" "ledger_user_events_reader" {
  count = var.events_enabled ? 1 : 0

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.events_reader[0].member

  condition {
    title       = "email-worker ledger database only"
    description = "Documents of the Firestore database ${google_firestore_database.ledger.name} only."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${google_firestore_database.ledger.name}\""
  }
}

# The reader runs on its own, in push and pull mode alike: a worker pool of
# events_reader_instances (1) instances running `email-worker events` as its own account,
# which the reader's AWS role trusts. It serves no requests and needs no ingress; Cloud Run
# restarts an instance whose process exits. Why a pool of its own: terraform/README.md.
resource "google_cloud_run_v2_worker_pool" "events_reader" {
  count = var.events_enabled ? 1 : 0

  name                = local.events_reader_pool_name
  location            = var.region
  deletion_protection = var.deletion_protection

  # Manual scaling, the worker pools' default mode (google >= 7.18 leaves it unset without a
  # diff).
  scaling {
    manual_instance_count = var.events_reader_instances
  }

  template {
    service_account = google_service_account.events_reader[0].email

    containers {
      image = var.image
      args  = ["events"]

      resources {
        limits = local.events_reader_limits
      }

      dynamic "env" {
        for_each = local.events_reader_env
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  # The first revision starts only when it may read the queue, publish and write the ledger.
  depends_on = [
    aws_iam_role_policy.events_reader,
    google_pubsub_topic_iam_member.events_publisher_events_reader,
    google_firestore_database.ledger,
    google_project_iam_member.ledger_user_events_reader,
    terraform_data.settings_check,
  ]
}
