# SES tenants: one per service that names one (services[*].ses_tenant). The worker sends the
# service's email with TenantName (worker/sending/ses_session.py), and SES then keeps the
# service's reputation metrics, sending status and suppression list apart from the others':
# a bounce storm in one service pauses its tenant, not the account. A send through a tenant
# succeeds only when every resource it uses is associated with the tenant: the service's domain
# identity and the configuration set its identities send with.

locals {
  tenant_services = { for id, s in var.services : id => s if s.ses_tenant != null }

  # "<service>/identity" and "<service>/configuration-set" -> the resource to associate.
  tenant_associations = merge({}, [for id, s in local.tenant_services : {
    "${id}/identity"          = { service = id, arn = aws_sesv2_email_identity.domain[s.sending_domain].arn }
    "${id}/configuration-set" = { service = id, arn = aws_sesv2_configuration_set.events.arn }
  }]...)
}

data "aws_partition" "current" {}

resource "aws_sesv2_tenant" "service" {
  for_each = local.tenant_services

  tenant_name = each.value.ses_tenant
  tags        = { email_worker_service = each.key }
}

resource "aws_sesv2_tenant_resource_association" "service" {
  for_each = local.tenant_associations

  tenant_name  = aws_sesv2_tenant.service[each.value.service].tenant_name
  resource_arn = each.value.arn
}

# The tenant's reputation policy (SES-managed: none, standard or strict). The aws provider has
# no resource for UpdateReputationEntityPolicy, so it is applied with the AWS CLI, again
# whenever the tenant or the policy changes; the machine running terraform needs the AWS CLI
# and sesv2:UpdateReputationEntityPolicy on the tenant.
resource "terraform_data" "tenant_reputation_policy" {
  for_each = { for id, s in local.tenant_services : id => s if s.reputation_policy != null }

  triggers_replace = [aws_sesv2_tenant.service[each.key].arn, each.value.reputation_policy]

  provisioner "local-exec" {
    command = join(" ", [
      "aws sesv2 update-reputation-entity-policy",
      "--region ${var.aws_region}",
      "--reputation-entity-type RESOURCE",
      "--reputation-entity-reference ${aws_sesv2_tenant.service[each.key].arn}",
      "--reputation-entity-policy arn:${data.aws_partition.current.partition}:ses:${var.aws_region}:aws:reputation-policy/${each.value.reputation_policy}",
    ])
  }
}
