terraform {
  required_version = ">= 1.9, < 2.0"

  # No backend block: state is local, one file per workspace under terraform.tfstate.d/. A team
  # adds its own backend (s3, gcs, azurerm, kubernetes, ...) in a backend.tf next to this file.

  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = ">= 3.0.2, < 4.0.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.36.0, < 3.0.0"
    }
    grafana = {
      source  = "grafana/grafana"
      version = ">= 3.25.0, < 5.0.0"
    }
  }
}
