terraform {
  # 1.11: S3 state locking without DynamoDB (backend.tf, use_lockfile).
  required_version = ">= 1.11, < 2.0"

  # Pinned to one minor each: without a committed .terraform.lock.hcl (see README), a new
  # provider release must not reach an environment before it was planned somewhere.
  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = ">= 3.1.2, < 3.2.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.38.0, < 2.39.0"
    }
    grafana = {
      source  = "grafana/grafana"
      version = ">= 4.45.1, < 4.46.0"
    }
  }
}
