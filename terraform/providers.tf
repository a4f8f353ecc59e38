provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = var.labels
}

provider "google-beta" {
  project        = var.project_id
  region         = var.region
  default_labels = var.labels
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = var.aws_tags
  }
}
