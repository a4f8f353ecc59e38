terraform {
  # optional() object attributes with defaults need 1.3; 1.5 is the oldest release still
  # commonly supported. OpenTofu 1.6+ reads this configuration unchanged.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
    # For google_project_service_identity only, which the google provider lacks.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.50"
    }
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.99"
    }
  }
}
