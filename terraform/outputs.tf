output "cloud_run_service" {
  description = "Name of the Cloud Run service (push mode) or worker pool (pull mode) running the worker."
  value       = one(concat(google_cloud_run_v2_service.worker[*].name, google_cloud_run_v2_worker_pool.worker[*].name))
}

output "cloud_run_uri" {
  description = "Main URL of the Cloud Run service (push mode; reachable only from inside the project with the default ingress); null in pull mode (a worker pool has none)."
  value       = one(google_cloud_run_v2_service.worker[*].uri)
}

output "push_endpoint" {
  description = "Where Pub/Sub pushes requests (push mode); null in pull mode."
  value       = local.push_mode ? local.push_endpoint : null
}

output "push_audiences" {
  description = "Audience of each push subscription's OIDC tokens, by subscription (push mode): the push_audience base, a colon, the subscription's name; null in pull mode."
  value       = local.push_mode ? local.push_audiences : null
}

output "worker_service_account" {
  description = "Email of the worker's service account."
  value       = google_service_account.worker.email
}

output "worker_service_account_unique_id" {
  description = "Unique id of the worker's service account: the azp and sub the AWS roles trust."
  value       = google_service_account.worker.unique_id
}

output "events_reader_service_account" {
  description = "Email of the SES events reader's service account; null when events_enabled is false."
  value       = one(google_service_account.events_reader[*].email)
}

output "events_reader_service_account_unique_id" {
  description = "Unique id of the events reader's service account: the azp and sub the events role alone trusts; null when events_enabled is false."
  value       = one(google_service_account.events_reader[*].unique_id)
}

output "push_service_account" {
  description = "Email of the push service account (push mode); null in pull mode."
  value       = one(google_service_account.push[*].email)
}

output "topics" {
  description = "Pub/Sub topic ids, by role: each service's (per-service tenancy), the shared one (shared tenancy, else null), replays, results and dead letters."
  value = {
    services    = { for id, topic in google_pubsub_topic.service : id => topic.id }
    requests    = one(google_pubsub_topic.requests[*].id)
    replays     = google_pubsub_topic.replays.id
    results     = google_pubsub_topic.results.id
    dead_letter = google_pubsub_topic.dead_letter.id
  }
}

output "subscriptions" {
  description = "Pub/Sub subscription ids: the worker's (by \"service:<id>\", \"shared\" or \"replay\") and the operators' dead-letter subscription."
  value = {
    worker      = { for key, subscription in google_pubsub_subscription.worker : key => subscription.id }
    dead_letter = google_pubsub_subscription.dead_letter_ops.id
  }
}

output "results_subscriptions" {
  description = "Each service's results subscription, by service id: the results of that service only (filtered on attributes.service_id), which only its publishers may read."
  value       = { for id, subscription in google_pubsub_subscription.results : id => subscription.name }
}

output "push_budget" {
  description = "How long one delivery may take (budget.tf), the ack deadline of the worker subscriptions (in push mode also Cloud Run's request timeout), and the ledger claim the worker is given, in seconds."
  value = {
    delivery_s     = local.push_budget_s
    ack_deadline_s = local.ack_deadline_s
    ledger_claim_s = local.ledger_claim_s
  }
}

output "config_bucket" {
  description = "Bucket holding the services' configuration documents."
  value       = google_storage_bucket.config.name
}

output "service_config_url" {
  description = "EMAIL_WORKER_SERVICE_CONFIG_URL: where the worker reads a service's configuration."
  value       = local.service_config_url
}

output "ledger_database" {
  description = "Id of the Firestore database holding the request ledger (EMAIL_WORKER_LEDGER is firestore://<id>)."
  value       = google_firestore_database.ledger.name
}

output "service_role_arns" {
  description = "AWS role ARN of each service, by service id."
  value       = { for id, role in aws_iam_role.service : id => role.arn }
}

output "ses_identity_arns" {
  description = "ARN of each SES domain identity, by domain."
  value       = { for domain, identity in aws_sesv2_email_identity.domain : domain => identity.arn }
}

output "ses_dkim_records" {
  description = "DNS records to publish for Easy DKIM, by domain: SES verifies the domain once they resolve (also in ses_dns_records)."
  value = {
    for domain, identity in aws_sesv2_email_identity.domain : domain => [
      for token in identity.dkim_signing_attributes[0].tokens : {
        name  = "${token}._domainkey.${domain}"
        type  = "CNAME"
        value = "${token}.dkim.amazonses.com"
      }
    ]
  }
}

output "ses_dns_records" {
  description = "Every DNS record to publish, by sending domain: Easy DKIM's three CNAMEs, the MAIL FROM domain's MX and SPF records, and a suggested DMARC record (start with p=none, read the reports, then tighten)."
  value = {
    for domain, identity in aws_sesv2_email_identity.domain : domain => concat(
      [for token in identity.dkim_signing_attributes[0].tokens : {
        name    = "${token}._domainkey.${domain}"
        type    = "CNAME"
        value   = "${token}.dkim.amazonses.com"
        purpose = "DKIM signature key (SES verifies the domain once the three resolve)"
      }],
      [
        {
          name    = aws_sesv2_email_identity_mail_from_attributes.domain[domain].mail_from_domain
          type    = "MX"
          value   = "10 feedback-smtp.${var.aws_region}.amazonses.com"
          purpose = "MAIL FROM: bounces reach SES"
        },
        {
          name    = aws_sesv2_email_identity_mail_from_attributes.domain[domain].mail_from_domain
          type    = "TXT"
          value   = "v=spf1 include:amazonses.com ~all"
          purpose = "SPF for the MAIL FROM domain"
        },
        {
          name    = "_dmarc.${domain}"
          type    = "TXT"
          value   = local.dmarc_record
          purpose = "DMARC, suggested: keep an existing policy of the domain's own"
        },
      ],
    )
  }
}

output "ses_configuration_set" {
  description = "The SES configuration set of the identities; its events reach the default EventBridge bus (source aws.ses)."
  value       = aws_sesv2_configuration_set.events.configuration_set_name
}

output "worker_environment" {
  description = "The environment the worker runs with; export it to run `email-worker` commands against this deployment."
  value       = local.worker_env
}

output "events_topic" {
  description = "Id of the Pub/Sub topic `email-worker events` publishes SES's events to (event v1, docs/formats.md); null when events_enabled is false."
  value       = one(google_pubsub_topic.events[*].id)
}

output "ses_events_queue_url" {
  description = "URL of the SQS queue the EventBridge rule fills with SES's events, which `email-worker events` reads (EMAIL_WORKER_SES_EVENTS_QUEUE_URL); null when events_enabled is false."
  value       = one(aws_sqs_queue.ses_events[*].url)
}

output "ses_events_dead_letter_queue_url" {
  description = "URL of the SQS dead-letter queue of the events queue: messages received ses_events_max_receive_count times without being deleted (docs/operations.md, Events dead-letter queue); null when events_enabled is false."
  value       = one(aws_sqs_queue.ses_events_dead_letter[*].url)
}

output "ses_events_role_arn" {
  description = "ARN of the AWS role the events reader assumes with its own Google identity (EMAIL_WORKER_SES_EVENTS_ROLE_ARN); null when events_enabled is false."
  value       = one(aws_iam_role.events_reader[*].arn)
}

output "console_url" {
  description = "URL of the web console behind IAP (console_enabled); null otherwise."
  value       = one(google_cloud_run_v2_service.console[*].uri)
}

output "console_service_account" {
  description = "Email of the console's service account (console_enabled); null otherwise."
  value       = one(google_service_account.console[*].email)
}
