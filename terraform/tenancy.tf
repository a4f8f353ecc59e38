# Who may publish where (docs/security.md). With per-service tenancy every service has a topic of
# its own that only its publishers may publish to, and the worker takes a request's service from
# the subscription it arrives on; operators replay dead letters through a topic of their own,
# and the worker sends a replay only if its ledger already holds that request of that service.
# The shared topic exists only when a deployment says it is single-tenant (tenancy = "shared").
#
# This file holds locals only, computed from variables only, so that the tests can evaluate it
# with `terraform console` without the providers.

locals {
  per_service = var.tenancy == "per-service"

  # By service id: its topic, and the worker's subscription on it (per-service tenancy only).
  service_topic_names = local.per_service ? {
    for id in keys(var.services) : id => replace(var.pubsub_names.service_topic, "{service}", id)
  } : {}
  service_subscription_names = local.per_service ? {
    for id in keys(var.services) : id => replace(var.pubsub_names.service_subscription, "{service}", id)
  } : {}

  # Each service's publishers, each on that service's topic and no other ("service member").
  service_publishers = local.per_service ? merge([
    for id, s in var.services : { for member in s.publishers : "${id} ${member}" => { service = id, member = member } }
  ]...) : {}

  # The shared topic's publishers may send as any service: only in shared tenancy.
  shared_publishers = local.per_service ? [] : var.request_publishers

  # Operators replay through the replay topic, never through a service's topic.
  replay_publishers = var.replay_publishers == null ? var.dead_letter_readers : var.replay_publishers
}
