terraform {
  # optional() object attributes with defaults need 1.3; 1.5 is the oldest release still
  # commonly supported. OpenTofu 1.6+ reads this configuration unchanged.
  required_version = ">= 1.5.0"

  required_providers {
    # 7.18 is the first release whose worker pools have no permanent diff on their scaling
    # (6.x planned a change to scaling_mode on every run), and 7.x is the first with probes on
    # worker pools. The 7.0 upgrade guide changes nothing this configuration uses.
    google = {
      source  = "hashicorp/google"
      version = "~> 7.18"
    }
    # For google_project_service_identity only, which the google provider lacks.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.18"
    }
    # 6.29 is the first release with aws_sesv2_tenant_resource_association (ses_tenants.tf);
    # aws_sesv2_tenant came before it.
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.29"
    }
    # time_sleep: Cloud Monitoring accepts an alert on a new log-based metric only once it has
    # registered the metric, minutes after it was created (monitoring.tf).
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }
}
