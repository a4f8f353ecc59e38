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

  # Each service reads its own results only: a subscription of its own on the results topic,
  # filtered on the result's service_id attribute, on which only its publishers are subscribers
  # (pubsub.tf). In either tenancy: a shared deployment's request_publishers act for every
  # service, and so read every service's results.
  results_subscription_names = {
    for id in keys(var.services) : id => replace(var.pubsub_names.results_subscription, "{service}", id)
  }
  results_subscribers = merge([
    for id, s in var.services : {
      for member in(local.per_service ? s.publishers : var.request_publishers) : "${id} ${member}" => { service = id, member = member }
    }
  ]...)

  # The names the worker uses for itself. A service whose topic or subscription would take one
  # of them is refused (checks.tf): a service `dead-letter` would own the dead-letter topic.
  worker_fixed_names = [
    var.pubsub_names.requests_topic,
    var.pubsub_names.results_topic,
    var.pubsub_names.dead_letter_topic,
    var.pubsub_names.worker_subscription,
    var.pubsub_names.dead_letter_subscription,
    var.pubsub_names.replay_topic,
    var.pubsub_names.replay_subscription,
    var.pubsub_names.events_topic,
  ]
  colliding_service_ids = sort([
    for id in keys(var.services) : id if length(setintersection(local.worker_fixed_names, [
      replace(var.pubsub_names.service_topic, "{service}", id),
      replace(var.pubsub_names.service_subscription, "{service}", id),
      local.results_subscription_names[id],
    ])) > 0
  ])

  # Every worker subscription, as one regular expression (RE2, matched whole) for Monitoring:
  # the service subscription template with a service id in place of {service}, the replay
  # subscription and the shared one. Of Pub/Sub's name characters only "." and "+" mean
  # something in a regular expression; each is put in a class of its own.
  worker_subscriptions_regex = join("|", [for name in [
    replace(var.pubsub_names.service_subscription, "/[.+]/", "[$0]"),
    replace(var.pubsub_names.replay_subscription, "/[.+]/", "[$0]"),
    replace(var.pubsub_names.worker_subscription, "/[.+]/", "[$0]"),
  ] : replace(name, "{service}", "[a-z0-9_-]{1,40}")])
}
