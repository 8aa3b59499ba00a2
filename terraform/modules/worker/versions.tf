terraform {
  required_version = ">= 1.9, < 2.0"

  required_providers {
    # 3.1 added helm_release.timeouts, which this module sets.
    helm = {
      source  = "hashicorp/helm"
      version = ">= 3.1.0, < 4.0.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.36.0, < 3.0.0"
    }
  }
}
