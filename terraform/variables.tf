# ---------------------------------------------------------------------------------------------
# Google Cloud
# ---------------------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project that holds the Pub/Sub topics, the Cloud Run service, the configuration bucket and the service accounts."
  type        = string
}

variable "region" {
  description = "Google Cloud region of the Cloud Run service (and of the configuration bucket unless config_bucket_location says otherwise)."
  type        = string
  default     = "europe-west2"
}

variable "environment" {
  description = "Name of this deployment (for example production or staging). It is the {environment} part of the configuration documents' location, and the worker's EMAIL_WORKER_ENVIRONMENT."
  type        = string
  default     = "production"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,62}$", var.environment))
    error_message = "environment must be 1-63 characters of lower-case letters, digits, '_' and '-'."
  }
}

variable "enable_apis" {
  description = "Enable the Google APIs this configuration uses (Cloud Run, Pub/Sub, Cloud Storage, Firestore, IAM, Cloud Resource Manager, Artifact Registry, Cloud Monitoring, Cloud Logging). Set to false when the project's APIs are managed elsewhere. They are never disabled on destroy."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels added to every Google Cloud resource that supports them."
  type        = map(string)
  default     = { app = "email-worker" }
}

variable "kms_key_name" {
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) that encrypts the Pub/Sub topics, the configuration bucket and the ledger database. null: Google-managed encryption. The key must be in the location of the bucket and of the database; the Pub/Sub, Cloud Storage and Firestore service agents need roles/cloudkms.cryptoKeyEncrypterDecrypter on it."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Pub/Sub
# ---------------------------------------------------------------------------------------------

variable "pubsub_names" {
  description = "Names of the Pub/Sub topics and subscriptions. The worker is given the same names through its environment. service_topic, service_subscription and results_subscription are templates: {service} stands for the service id."
  type = object({
    requests_topic           = optional(string, "email-requests")
    results_topic            = optional(string, "email-results")
    dead_letter_topic        = optional(string, "email-requests-dead-letter")
    worker_subscription      = optional(string, "email-requests-worker")
    dead_letter_subscription = optional(string, "email-requests-dead-letter-ops")
    service_topic            = optional(string, "email-requests-{service}")
    service_subscription     = optional(string, "email-requests-{service}-worker")
    replay_topic             = optional(string, "email-replays")
    replay_subscription      = optional(string, "email-replays-worker")
    events_topic             = optional(string, "email-events")
    results_subscription     = optional(string, "email-results-{service}")
  })
  default = {}

  validation {
    condition = alltrue([for template in [var.pubsub_names.service_topic, var.pubsub_names.service_subscription, var.pubsub_names.results_subscription] :
      length(split("{service}", template)) == 2 && can(regex("^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$", replace(template, "{service}", "svc")))
    ])
    error_message = "pubsub_names.service_topic, service_subscription and results_subscription must be Pub/Sub names with {service} in them once."
  }
}

variable "tenancy" {
  description = "Who a request's service is. \"per-service\": each service publishes to a topic of its own (pubsub_names.service_topic) that only its publishers may publish to, and the worker takes the service from the subscription a request arrives on, never from the request. \"shared\": one topic (pubsub_names.requests_topic) for every request_publishers member, and the worker trusts the service_id in the request: for a single-tenant deployment only (docs/security.md)."
  type        = string
  default     = "per-service"

  validation {
    condition     = contains(["per-service", "shared"], var.tenancy)
    error_message = "tenancy must be \"per-service\" or \"shared\"."
  }
}

variable "delivery_mode" {
  description = "How the worker receives requests: \"push\" (Pub/Sub pushes to a Cloud Run service's /pubsub/push with an OIDC token; Cloud Run scales it with the pushes) or \"pull\" (a Cloud Run worker pool of pull_instances instances streams from the subscriptions)."
  type        = string
  default     = "push"

  validation {
    condition     = contains(["push", "pull"], var.delivery_mode)
    error_message = "delivery_mode must be \"push\" or \"pull\"."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries of a request before Pub/Sub forwards it to the dead-letter topic (the subscription's dead-letter policy). The worker is given the same number (EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS) to know its last attempt. With the retry backoffs, the attempts must outlast a dead delivery's claim, the Send-event wait and a 30-minute outage (budget.tf): 12 with 10-600 s backoffs cover about an hour."
  type        = number
  default     = 12

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100 && floor(var.max_delivery_attempts) == var.max_delivery_attempts
    error_message = "max_delivery_attempts must be a whole number from 5 to 100, as Pub/Sub requires."
  }
}

variable "ack_deadline_seconds" {
  description = "Ack deadline of the worker subscriptions; in push mode also the Cloud Run request timeout, and then it must cover the slowest delivery the worker allows itself (see push_budget in budget.tf; plan fails when it does not). null: push mode derives it from that budget (242 s with the defaults), pull mode uses 60 (the pull worker renews its leases itself)."
  type        = number
  default     = null

  validation {
    condition     = var.ack_deadline_seconds == null ? true : var.ack_deadline_seconds >= 10 && var.ack_deadline_seconds <= 600
    error_message = "ack_deadline_seconds must be from 10 to 600, or null to derive it."
  }
}

variable "send_deadline_seconds" {
  description = "The worker's EMAIL_WORKER_SEND_DEADLINE_S: no new send attempt starts after this long within one delivery. It is part of the push budget, and of the ledger claim terraform gives the worker."
  type        = number
  default     = 30

  validation {
    condition     = var.send_deadline_seconds >= 1 && var.send_deadline_seconds <= 300
    error_message = "send_deadline_seconds must be from 1 to 300."
  }
}

variable "publish_timeout_seconds" {
  description = "The worker's EMAIL_WORKER_PUBLISH_TIMEOUT_S: how long it waits for Pub/Sub to confirm a result or a dead letter before handing the delivery back. Two of them are part of the push budget."
  type        = number
  default     = 30

  validation {
    condition     = var.publish_timeout_seconds >= 1 && var.publish_timeout_seconds <= 300
    error_message = "publish_timeout_seconds must be from 1 to 300."
  }
}

variable "retry_minimum_backoff_seconds" {
  description = "Shortest delay before Pub/Sub redelivers a request that was nacked or not acknowledged in time."
  type        = number
  default     = 10

  validation {
    condition     = var.retry_minimum_backoff_seconds >= 0 && var.retry_minimum_backoff_seconds <= 600
    error_message = "retry_minimum_backoff_seconds must be from 0 to 600."
  }
}

variable "retry_maximum_backoff_seconds" {
  description = "Longest delay before Pub/Sub redelivers a request (the backoff grows exponentially up to it)."
  type        = number
  default     = 600

  validation {
    condition     = var.retry_maximum_backoff_seconds >= 0 && var.retry_maximum_backoff_seconds <= 600
    error_message = "retry_maximum_backoff_seconds must be from 0 to 600."
  }
}

variable "request_retention_seconds" {
  description = "How long the worker subscription keeps undelivered requests (for example while the worker is down)."
  type        = number
  default     = 604800

  validation {
    condition     = var.request_retention_seconds >= 600 && var.request_retention_seconds <= 604800
    error_message = "request_retention_seconds must be from 600 (10 minutes) to 604800 (7 days)."
  }
}

variable "dead_letter_retention_seconds" {
  description = "How long dead letters are kept: the dead-letter topic's retention and that of the operators' subscription (Pub/Sub allows up to 31 days). The alerts warn long before (alerts.dead_letter_age_hours)."
  type        = number
  default     = 2678400

  validation {
    condition     = var.dead_letter_retention_seconds >= 600 && var.dead_letter_retention_seconds <= 2678400
    error_message = "dead_letter_retention_seconds must be from 600 (10 minutes) to 2678400 (31 days)."
  }
}

variable "dead_letter_ack_deadline_seconds" {
  description = "Ack deadline of the operators' dead-letter subscription (time an operator's tool has to acknowledge a dead letter it pulled)."
  type        = number
  default     = 60

  validation {
    condition     = var.dead_letter_ack_deadline_seconds >= 10 && var.dead_letter_ack_deadline_seconds <= 600
    error_message = "dead_letter_ack_deadline_seconds must be from 10 to 600."
  }
}

variable "request_publishers" {
  description = "tenancy = \"shared\" only: IAM members (for example serviceAccount:billing@my-project.iam.gserviceaccount.com) allowed to publish requests to the shared requests topic, as any service. Each gets roles/pubsub.publisher on that topic only. With per-service tenancy, give each service its own publishers instead (services)."
  type        = list(string)
  default     = []
}

variable "dead_letter_readers" {
  description = "IAM members (operators, their groups or tools) allowed to read and acknowledge dead letters. Each gets roles/pubsub.subscriber and roles/pubsub.viewer on the operators' dead-letter subscription only."
  type        = list(string)
  default     = []
}

variable "replay_publishers" {
  description = "IAM members allowed to replay dead letters: each gets roles/pubsub.publisher on the replay topic only, never on a service's topic. The worker sends a replay only when its request ledger holds that request from that service, so publishing there cannot send new email. null: dead_letter_readers."
  type        = list(string)
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Cloud Run
# ---------------------------------------------------------------------------------------------

variable "image" {
  description = "Container image of the worker, built from this repository's Dockerfile, by digest (for example europe-west2-docker.pkg.dev/my-project/email/email-worker@sha256:...). A tag can be moved to other contents; a digest cannot."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]*(:[0-9]+)?(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must name the image by digest: REGISTRY/PATH@sha256:<64 hex digits> (docker buildx imagetools inspect, or the digest docker push prints)."
  }
}

variable "service_name" {
  description = "Name of the Cloud Run service (push mode) or worker pool (pull mode). The SES events reader's worker pool is <service_name>-events."
  type        = string
  default     = "email-worker"
}

variable "worker_service_account_id" {
  description = "Account id of the worker's service account (the identity the worker runs as and that AWS trusts)."
  type        = string
  default     = "email-worker"
}

variable "events_reader_service_account_id" {
  description = "Account id of the SES events reader's service account (events_enabled): it runs `email-worker events`, and only the reader's AWS role trusts it."
  type        = string
  default     = "email-worker-events"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.events_reader_service_account_id))
    error_message = "events_reader_service_account_id must be a service account id: 6-30 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "push_service_account_id" {
  description = "Account id of the service account Pub/Sub signs push requests as (push mode only)."
  type        = string
  default     = "email-worker-push"
}

variable "push_audience" {
  description = "Base of the OIDC token audiences Pub/Sub attaches to push requests: each subscription's tokens carry this, a colon and the subscription's name, and the worker and Cloud Run accept only those. null: a value derived from the project, region and service name."
  type        = string
  default     = null
}

variable "ingress" {
  description = "Cloud Run ingress. INGRESS_TRAFFIC_INTERNAL_ONLY still admits Pub/Sub push from the same project; nothing else needs to reach the service."
  type        = string
  default     = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "INGRESS_TRAFFIC_ALL"], var.ingress)
    error_message = "ingress must be INGRESS_TRAFFIC_INTERNAL_ONLY, INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER or INGRESS_TRAFFIC_ALL."
  }
}

variable "min_instances" {
  description = "Push mode: fewest Cloud Run instances kept running (0 lets the service scale to zero)."
  type        = number
  default     = 0

  validation {
    condition     = var.min_instances >= 0
    error_message = "min_instances must not be negative."
  }
}

variable "push_cpu_always_allocated" {
  description = "Push mode: keep the worker's CPU allocated between pushes (Cloud Run's instance-based billing), so that its own threads run while no push is in flight: scheduled requests are dispatched when they fall due and the quota pacer's heartbeats keep its share right. Set it, with min_instances of 1 or more, where services schedule requests; false: CPU only during pushes."
  type        = bool
  default     = false
}

variable "max_instances" {
  description = "Push mode: most Cloud Run instances. Bounds the SES send rate and the cost; each instance is limited to ses_max_send_rate_per_s divided by this."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1
    error_message = "max_instances must be at least 1."
  }
}

variable "pull_instances" {
  description = "Pull mode: the fixed number of instances of the Cloud Run worker pool (manual scaling: nothing scales it on CPU or backlog). Each instance is limited to ses_max_send_rate_per_s divided by this. Resize by changing it and applying; 0 stops sending, and requests wait in their subscriptions (see the README)."
  type        = number
  default     = 1

  validation {
    condition     = var.pull_instances >= 0 && floor(var.pull_instances) == var.pull_instances
    error_message = "pull_instances must be a whole number, 0 or more."
  }
}

variable "ses_max_send_rate_per_s" {
  description = "An upper bound on the worker's sending, in recipients per second, for the whole deployment. The worker reads the SES account's quota itself (GetAccount) and splits it between its live instances, so leave this null unless you want it to use less. Each instance is limited to this divided by the instance count (max_instances in push mode, pull_instances in pull mode: EMAIL_WORKER_SEND_RATE_PER_S), below its share of the quota. null: the quota alone."
  type        = number
  default     = null

  validation {
    condition     = var.ses_max_send_rate_per_s == null ? true : var.ses_max_send_rate_per_s > 0
    error_message = "ses_max_send_rate_per_s must be positive, or null for no limit."
  }
}

variable "request_concurrency" {
  description = "Deliveries one instance processes at once: the worker's threads (EMAIL_WORKER_CONCURRENCY) and, in push mode, Cloud Run's max_instance_request_concurrency, so that no push waits for a thread while its ack deadline runs."
  type        = number
  default     = 32

  validation {
    condition     = var.request_concurrency >= 1 && var.request_concurrency <= 1000
    error_message = "request_concurrency must be from 1 to 1000."
  }
}

variable "cpu" {
  description = "CPU limit of one instance, as Cloud Run writes it (\"1\", \"2\", \"1000m\")."
  type        = string
  default     = "1"
}

variable "memory" {
  description = "Memory limit of one instance, as Cloud Run writes it (\"512Mi\", \"1Gi\")."
  type        = string
  default     = "512Mi"
}

variable "log_level" {
  description = "The worker's EMAIL_WORKER_LOG_LEVEL."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "default_service_id" {
  description = "tenancy = \"shared\": service whose configuration is used for requests that name none (EMAIL_WORKER_SERVICE_ID). null: such requests are rejected. Must be a key of services."
  type        = string
  default     = null
}

variable "extra_env" {
  description = "Further environment variables for the worker (and the SES events reader), such as EMAIL_WORKER_SEND_MAX_ATTEMPTS or EMAIL_WORKER_SESSION_TTL_S (see the README's configuration table). Must not set the ones this configuration manages, nor PORT. Not for secrets: the worker needs none."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([for name in keys(var.extra_env) : !contains([
      "PORT",
      "GOOGLE_CLOUD_PROJECT",
      "EMAIL_WORKER_ENVIRONMENT",
      "EMAIL_WORKER_SERVICE_CONFIG_URL",
      "EMAIL_WORKER_ALLOWED_SERVICES",
      "EMAIL_WORKER_SERVICE_ID",
      "EMAIL_WORKER_TENANCY",
      "EMAIL_WORKER_SERVICE_TOPIC",
      "EMAIL_WORKER_SERVICE_SUBSCRIPTION",
      "EMAIL_WORKER_REPLAY_TOPIC",
      "EMAIL_WORKER_REPLAY_SUBSCRIPTION",
      "EMAIL_WORKER_SUBSCRIPTION",
      "EMAIL_WORKER_REQUESTS_TOPIC",
      "EMAIL_WORKER_RESULTS_TOPIC",
      "EMAIL_WORKER_DEAD_LETTER_TOPIC",
      "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION",
      "EMAIL_WORKER_LOG_LEVEL",
      "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS",
      "EMAIL_WORKER_PUSH_AUDIENCE",
      "EMAIL_WORKER_PUSH_SERVICE_ACCOUNT",
      "EMAIL_WORKER_PUSH_SUBSCRIPTION",
      "EMAIL_WORKER_SEND_DEADLINE_S",
      "EMAIL_WORKER_PUBLISH_TIMEOUT_S",
      "EMAIL_WORKER_PUSH_ACK_DEADLINE_S",
      "EMAIL_WORKER_LEDGER_CLAIM_S",
      "EMAIL_WORKER_CONCURRENCY",
      "EMAIL_WORKER_SEND_RATE_PER_S",
      "EMAIL_WORKER_LEDGER",
      "EMAIL_WORKER_LEDGER_RETENTION_S",
      "EMAIL_WORKER_LEDGER_TAKEOVER",
      "EMAIL_WORKER_SEND_EVENT_WAIT_S",
      "EMAIL_WORKER_RETRY_MIN_BACKOFF_S",
      "EMAIL_WORKER_RETRY_MAX_BACKOFF_S",
      "EMAIL_WORKER_SES_EVENTS_QUEUE_URL",
      "EMAIL_WORKER_SES_EVENTS_ROLE_ARN",
      "EMAIL_WORKER_EVENTS_TOPIC",
    ], name)])
    error_message = "extra_env must not set PORT or a variable this configuration manages (set the matching terraform variable instead)."
  }

  validation {
    condition     = !contains(keys(var.extra_env), "EMAIL_WORKER_PUSH_AUTH") && !contains(keys(var.extra_env), "EMAIL_WORKER_PUSH_CERTS_URL")
    error_message = "extra_env must not set EMAIL_WORKER_PUSH_AUTH or EMAIL_WORKER_PUSH_CERTS_URL: a deployed worker always verifies push tokens against Google's keys."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the Cloud Run service, the worker pools and the ledger database (terraform destroy fails until this is false and applied)."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------
# Alerts (Cloud Monitoring on Google Cloud, CloudWatch on AWS)
# ---------------------------------------------------------------------------------------------

variable "notification_channels" {
  description = "Cloud Monitoring notification channels (projects/PROJECT/notificationChannels/ID: e-mail, PagerDuty, Slack, ...) every alert policy notifies. []: the policies still open incidents in the console, but nobody is told."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "Each notification channel must be projects/PROJECT/notificationChannels/ID."
  }
}

variable "alerts" {
  description = <<-EOT
    When the Cloud Monitoring alert policies fire (terraform/README.md, Alerts):
      dead_letter_age_hours:     a dead letter has waited this long unhandled.
      request_age_minutes:       a request has waited this long in a worker subscription.
      push_5xx_per_minute:       the worker answered Pub/Sub's pushes with 5xx this often, over
                                 10 minutes (push mode; any push answered after its ack deadline
                                 alerts at once).
      push_4xx_per_minute:       pushes were refused with 4xx (a broken invoker grant or push
                                 audience, or SES throttling's 429) more often than this, over
                                 5 minutes (push mode; 0: any).
      failed_requests_per_hour:  more requests than this ended failed (SES refused or kept
                                 failing), or found the request ledger unavailable, in an hour.
      ses_throttled_percent:     SES throttled more than this share of the requests that called
                                 it, over 10 minutes.
  EOT
  type = object({
    dead_letter_age_hours    = optional(number, 24)
    request_age_minutes      = optional(number, 15)
    push_5xx_per_minute      = optional(number, 5)
    push_4xx_per_minute      = optional(number, 0)
    failed_requests_per_hour = optional(number, 0)
    ses_throttled_percent    = optional(number, 1)
  })
  default = {}

  validation {
    condition = (var.alerts.dead_letter_age_hours > 0 && var.alerts.request_age_minutes > 0 &&
      var.alerts.push_5xx_per_minute >= 0 && var.alerts.push_4xx_per_minute >= 0 &&
    var.alerts.failed_requests_per_hour >= 0 && var.alerts.ses_throttled_percent >= 0)
    error_message = "alerts: the ages must be positive, the rates must not be negative."
  }
}

variable "aws_alarm_actions" {
  description = "ARNs (SNS topics, usually) the CloudWatch alarms on the SES account's bounce and complaint rates notify when they fire and when they recover. []: the alarms show in the CloudWatch console only."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------------------------
# Service configuration documents
# ---------------------------------------------------------------------------------------------

variable "config_bucket_name" {
  description = "Name of the bucket holding the services' configuration documents (globally unique). null: \"<project_id>-email-worker-config\"."
  type        = string
  default     = null
}

variable "config_bucket_location" {
  description = "Location of the configuration bucket. null: the region variable."
  type        = string
  default     = null
}

variable "config_versions_retained" {
  description = "Old versions of each configuration document kept in the bucket (for rollback and audit); older ones are deleted."
  type        = number
  default     = 10

  validation {
    condition     = var.config_versions_retained >= 1
    error_message = "config_versions_retained must be at least 1."
  }
}

variable "config_access_log_bucket" {
  description = "Bucket that receives the configuration bucket's usage logs. null: no usage logs (Cloud Audit Logs still record IAM and admin activity)."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Request ledger (Firestore)
# ---------------------------------------------------------------------------------------------

variable "ledger_database_id" {
  description = "Id of the Firestore database created for the request ledger (EMAIL_WORKER_LEDGER=firestore://<id>). The worker is granted access to this database only. Not (default): the ledger has a database of its own."
  type        = string
  default     = "email-worker-ledger"

  validation {
    # Firestore's rule for database ids, less (default) and the UUID-like ids it refuses.
    condition     = can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.ledger_database_id)) && !can(regex("^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$", var.ledger_database_id))
    error_message = "ledger_database_id must be 4-63 lower-case letters, digits and hyphens, starting with a letter and ending with a letter or digit."
  }
}

variable "ledger_location" {
  description = "Firestore location of the ledger database: a region (for example europe-west2) or a multi-region (eur3, nam5). null: the region variable. It cannot be changed once the database exists."
  type        = string
  default     = null
}

variable "ledger_point_in_time_recovery" {
  description = "Keep 7 days of the ledger database's past versions (Firestore point-in-time recovery) instead of 1 hour. Off by default: the ledger holds only short-lived claims and results whose loss makes redeliveries send again, not lost data, and the extra versions are billed as storage."
  type        = bool
  default     = false
}

variable "ledger_retention_seconds" {
  description = "How long the ledger keeps a request's record after its last write (EMAIL_WORKER_LEDGER_RETENTION_S); Firestore's TTL policy then deletes it, usually within a day. Must cover request_retention_seconds, so that every redelivery finds its request's record."
  type        = number
  default     = 691200

  validation {
    condition     = var.ledger_retention_seconds >= 86400 && floor(var.ledger_retention_seconds) == var.ledger_retention_seconds
    error_message = "ledger_retention_seconds must be a whole number of seconds, at least 86400 (a day)."
  }
}

variable "ledger_takeover" {
  description = "What a delivery does when it takes over a claim that expired during its SES call, so the email may or may not have been sent (EMAIL_WORKER_LEDGER_TAKEOVER): \"resend\" (at least once) or \"fail\" with outcome_unknown (at most once)."
  type        = string
  default     = "resend"

  validation {
    condition     = contains(["resend", "fail"], var.ledger_takeover)
    error_message = "ledger_takeover must be \"resend\" or \"fail\"."
  }
}

# ---------------------------------------------------------------------------------------------
# Services and AWS
# ---------------------------------------------------------------------------------------------

variable "services" {
  description = <<-EOT
    The services the worker sends for, keyed by service id. For each, terraform creates an AWS
    role that only the worker may assume and that may send only from the service's sending
    domain and allowed From addresses, and writes the service's configuration document.
      sending_domain:       SES domain identity the service sends through (created here, with DKIM).
      default_from_address: From used when a request has none; also allowed as a From address.
      allowed_from_domains: domains any address of which may be the From (exact domains, each
                            the sending domain or a subdomain of it). Default: the sending domain.
      publishers:           tenancy "per-service": IAM members (for example
                            serviceAccount:billing@my-project.iam.gserviceaccount.com) that may
                            publish this service's requests; each gets roles/pubsub.publisher on
                            the service's topic only. Default: none.
      attachment_prefixes:  gs://BUCKET/PATH/ prefixes (ending in "/"; gs://BUCKET/ for a whole
                            bucket) the service's attachments by reference may be read from.
                            The worker gets read access to objects under them and nothing
                            else; no service's prefix may lie inside another's. The buckets
                            need uniform bucket-level access (IAM conditions). Default: none.
      ses_tenant:           SES tenant the service sends through (TenantName on every send):
                            terraform creates it and associates the service's domain identity
                            and the configuration set with it, so that SES keeps the service's
                            reputation, sending status and suppression apart. 1-64 letters,
                            digits, '-' and '_', one tenant per service. Default: none (the
                            service sends with no tenant, on the account's reputation).
      reputation_policy:    SES's reputation policy for the tenant: "none", "standard" or
                            "strict" (needs ses_tenant; applied with the AWS CLI, see
                            ses_tenants.tf). Default: SES's own default for a new tenant.
    Use lower case: AWS compares From addresses case-sensitively.
  EOT
  type = map(object({
    sending_domain       = string
    default_from_address = optional(string)
    allowed_from_domains = optional(list(string))
    publishers           = optional(list(string), [])
    attachment_prefixes  = optional(list(string), [])
    ses_tenant           = optional(string)
    reputation_policy    = optional(string)
  }))

  validation {
    condition     = alltrue([for s in var.services : s.ses_tenant == null ? true : can(regex("^[A-Za-z0-9_-]{1,64}$", s.ses_tenant))])
    error_message = "Each ses_tenant must be 1-64 letters, digits, '-' and '_' (SES's rule for a tenant's name)."
  }

  validation {
    condition     = length(compact([for s in var.services : s.ses_tenant])) == length(distinct(compact([for s in var.services : s.ses_tenant])))
    error_message = "Each service needs a tenant of its own: two services name the same ses_tenant."
  }

  validation {
    condition     = alltrue([for s in var.services : s.reputation_policy == null ? true : (s.ses_tenant != null && contains(["none", "standard", "strict"], s.reputation_policy))])
    error_message = "A reputation_policy must be none, standard or strict, and needs the service's ses_tenant."
  }

  validation {
    condition     = length(var.services) > 0
    error_message = "services must name at least one service."
  }

  validation {
    condition     = alltrue([for id in keys(var.services) : can(regex("^[a-z0-9][a-z0-9_-]{0,39}$", id))])
    error_message = "Each service id must be 1-40 characters of lower-case letters, digits, '_' and '-', starting with a letter or digit."
  }

  # A service's topic and subscription must not be one of the worker's own (pubsub_names'
  # defaults): a service "dead-letter" would publish to, and own, the dead-letter topic. The
  # worker's settings and `email-worker setup` refuse the same ids; checks.tf refuses them for
  # names other than the defaults.
  validation {
    condition = alltrue([for id in keys(var.services) : length(setintersection(
      ["email-requests", "email-results", "email-requests-dead-letter", "email-requests-worker", "email-requests-dead-letter-ops", "email-replays", "email-replays-worker", "email-events"],
      ["email-requests-${id}", "email-requests-${id}-worker"],
    )) == 0])
    error_message = "A service id must not make a topic or subscription name the worker uses for itself: dead-letter, dead-letter-ops and worker are reserved (email-requests-<id> would be the dead-letter topic, its operators' subscription, or the shared subscription)."
  }

  validation {
    condition     = alltrue([for s in var.services : can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", s.sending_domain))])
    error_message = "Each sending_domain must be a lower-case ASCII domain name (use the punycode form of an internationalised domain)."
  }

  validation {
    condition = alltrue([for s in var.services : s.default_from_address == null ? true : (
      can(regex("^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@([a-z0-9-]+\\.)+[a-z]{2,63}$", s.default_from_address)) && (
        endswith(s.default_from_address, "@${s.sending_domain}") || endswith(s.default_from_address, ".${s.sending_domain}")
      )
    )])
    error_message = "Each default_from_address must be a lower-case address in the service's sending_domain or a subdomain of it."
  }

  validation {
    condition = alltrue(flatten([for s in var.services : [
      for d in(s.allowed_from_domains == null ? [s.sending_domain] : s.allowed_from_domains) : d == s.sending_domain || endswith(d, ".${s.sending_domain}")
    ]]))
    error_message = "Each of a service's allowed_from_domains must be its sending_domain or a subdomain of it."
  }

  validation {
    condition     = alltrue([for s in var.services : s.default_from_address != null || length(s.allowed_from_domains == null ? [s.sending_domain] : s.allowed_from_domains) > 0])
    error_message = "Each service must allow at least one From: a default_from_address or a non-empty allowed_from_domains."
  }

  validation {
    condition     = alltrue(flatten([for s in var.services : [for m in s.publishers : can(regex("^(serviceAccount|user|group|principal|principalSet):.+", m))]]))
    error_message = "Each of a service's publishers must be an IAM member such as serviceAccount:NAME@PROJECT.iam.gserviceaccount.com or group:NAME@DOMAIN."
  }

  # The same strict form the worker reads (worker/config/gcs_uri.py): a lower-case bucket, then
  # path segments of printable ASCII without % \ ? # [ ] * and never "." or "..".
  validation {
    condition = alltrue(flatten([for s in var.services : [for p in s.attachment_prefixes :
      can(regex("^gs://[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]/([!\"$&-)+-.0->@-Z^-~]([ !\"$&-)+-.0->@-Z^-~]*[!\"$&-)+-.0->@-Z^-~])?/)*$", p))
      && !strcontains(p, "..") && !strcontains(p, "/./")
    ]]))
    error_message = "Each of a service's attachment_prefixes must be gs://BUCKET/ or gs://BUCKET/PATH/ with a lower-case bucket, ending in \"/\", without %, \\, ?, #, [, ], *, empty, \".\" or \"..\" segments."
  }

  # A prefix inside another service's would let that service name the other's files.
  validation {
    condition = alltrue(flatten([for a, sa in var.services : [for b, sb in var.services : [
      for pa in sa.attachment_prefixes : [for pb in sb.attachment_prefixes : a == b || !startswith(pa, pb)]
    ]]]))
    error_message = "No service's attachment_prefixes may lie inside (or equal) another service's."
  }
}

variable "aws_region" {
  description = "AWS region of the SES identities; written into every service's configuration document as aws_region."
  type        = string
  default     = "eu-west-2"
}

variable "aws_role_name_prefix" {
  description = "Prefix of the AWS IAM role names; a service's role is <prefix><service id>."
  type        = string
  default     = "email-worker-"
}

variable "aws_permissions_boundary_arn" {
  description = "Permissions boundary attached to every AWS role created here. null: none."
  type        = string
  default     = null
}

variable "aws_max_session_duration" {
  description = "Longest AWS session, in seconds, the worker may obtain for a service role (it refreshes before expiry)."
  type        = number
  default     = 3600

  validation {
    condition     = var.aws_max_session_duration >= 3600 && var.aws_max_session_duration <= 43200
    error_message = "aws_max_session_duration must be from 3600 to 43200 seconds."
  }
}

variable "ses_dkim_key_length" {
  description = "Length of the Easy DKIM keys of the SES domain identities."
  type        = string
  default     = "RSA_2048_BIT"

  validation {
    condition     = contains(["RSA_1024_BIT", "RSA_2048_BIT"], var.ses_dkim_key_length)
    error_message = "ses_dkim_key_length must be RSA_1024_BIT or RSA_2048_BIT."
  }
}

variable "ses_configuration_set_name" {
  description = "Name of the SES configuration set the domain identities send with by default; it publishes their events to EventBridge."
  type        = string
  default     = "email-worker"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.ses_configuration_set_name))
    error_message = "ses_configuration_set_name must be 1-64 letters, digits, _ or -."
  }
}

variable "ses_event_types" {
  description = "SES event types published to the default EventBridge bus for every message. They arrive with source aws.ses and a detail-type such as \"Email Delivered\" or \"Email Bounced\"; the detail holds mail.messageId and mail.tags."
  type        = list(string)
  default     = ["SEND", "REJECT", "BOUNCE", "COMPLAINT", "DELIVERY", "DELIVERY_DELAY"]

  validation {
    condition = length(var.ses_event_types) > 0 && alltrue([for t in var.ses_event_types : contains(
      ["SEND", "REJECT", "BOUNCE", "COMPLAINT", "DELIVERY", "OPEN", "CLICK", "RENDERING_FAILURE", "DELIVERY_DELAY", "SUBSCRIPTION"], t
    )])
    error_message = "ses_event_types must name SES event types: SEND, REJECT, BOUNCE, COMPLAINT, DELIVERY, OPEN, CLICK, RENDERING_FAILURE, DELIVERY_DELAY, SUBSCRIPTION."
  }
}

variable "ses_tls_policy" {
  description = "REQUIRE: SES delivers a message only over TLS to the receiving server. OPTIONAL: in the clear when the server offers no TLS."
  type        = string
  default     = "REQUIRE"

  validation {
    condition     = contains(["REQUIRE", "OPTIONAL"], var.ses_tls_policy)
    error_message = "ses_tls_policy must be REQUIRE or OPTIONAL."
  }
}

variable "ses_mail_from_subdomain" {
  description = "Custom MAIL FROM (envelope sender) of every SES domain identity: this label under the sending domain (bounce.example.org for example.org). Bounces go there, and SPF then passes for a subdomain of the From domain, which DMARC counts as aligned. It must not be used for anything else: not as a From domain, and with no mail of its own (it gets an MX record pointing at SES)."
  type        = string
  default     = "bounce"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.ses_mail_from_subdomain))
    error_message = "ses_mail_from_subdomain must be one lower-case DNS label."
  }
}

variable "dmarc_report_address" {
  description = "Mailbox for aggregate DMARC reports (rua) in the suggested DMARC records (output ses_dns_records). null: the suggestion asks for no reports."
  type        = string
  default     = null

  validation {
    condition     = var.dmarc_report_address == null ? true : can(regex("^[^@\\s;,]+@[a-z0-9.-]+\\.[a-z]{2,63}$", var.dmarc_report_address))
    error_message = "dmarc_report_address must be a lower-case e-mail address, or null."
  }
}

variable "aws_tags" {
  description = "Tags added to every AWS resource."
  type        = map(string)
  default     = { app = "email-worker" }
}

# ---------------------------------------------------------------------------------------------
# SES events back to Google Cloud (events.tf)
# ---------------------------------------------------------------------------------------------

variable "events_enabled" {
  description = "Bring SES's events about each sent email (send, delivery, bounce, complaint, delivery delay, reject) to Google Cloud: an EventBridge rule routes them from the default bus to an SQS queue (with a dead-letter queue), and a Cloud Run worker pool running `email-worker events` publishes them to the events topic (pubsub_names.events_topic) and records each recipient's status in the request ledger. false: none of that is created; the configuration set still publishes the events to the default bus."
  type        = bool
  default     = true
}

variable "events_reader_instances" {
  description = "Instances of the worker pool that runs `email-worker events` (manual scaling). One reads up to ten SQS messages per receive; add instances if the SES events queue's oldest message keeps getting older. 0 stops reading: events wait in the queue for up to 4 days."
  type        = number
  default     = 1

  validation {
    condition     = var.events_reader_instances >= 0 && floor(var.events_reader_instances) == var.events_reader_instances
    error_message = "events_reader_instances must be a whole number, 0 or more."
  }
}

variable "ses_events_max_receive_count" {
  description = "Receives of one SQS message before the SES events queue's redrive policy moves it to the dead-letter queue: a malformed message, or an event whose publish or ledger write kept failing (each receive is one visibility timeout apart, 90 s by default). See docs/operations.md, Events dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.ses_events_max_receive_count >= 1 && var.ses_events_max_receive_count <= 1000 && floor(var.ses_events_max_receive_count) == var.ses_events_max_receive_count
    error_message = "ses_events_max_receive_count must be a whole number from 1 to 1000, as SQS requires."
  }
}
