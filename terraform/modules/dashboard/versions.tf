terraform {
  required_version = ">= 1.9, < 2.0"

  required_providers {
    grafana = {
      source  = "grafana/grafana"
      version = ">= 3.25.0, < 5.0.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.36.0, < 3.0.0"
    }
  }
}
