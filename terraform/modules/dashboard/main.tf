locals {
  dashboard_json_path = coalesce(var.dashboard_json_path, "${path.module}/../../../dashboards/workflow-worker.json")
  # try() keeps the failure for the precondition below, which says how to fix it.
  dashboard_json = try(file(local.dashboard_json_path), "")
}

resource "grafana_dashboard" "this" {
  count = var.mode == "grafana" ? 1 : 0

  config_json = local.dashboard_json
  folder      = var.folder_uid != "" ? var.folder_uid : null
  overwrite   = var.overwrite
  message     = "Managed by Terraform (workflow-worker)"

  lifecycle {
    precondition {
      condition     = can(jsondecode(local.dashboard_json).uid)
      error_message = "Dashboard JSON missing or without uid at ${local.dashboard_json_path}: run `just dashboard` (dashboards/generate.py)."
    }
  }
}

resource "kubernetes_config_map_v1" "this" {
  count = var.mode == "configmap" ? 1 : 0

  metadata {
    name        = var.name
    namespace   = var.namespace
    labels      = merge(var.labels, var.sidecar_label)
    annotations = var.folder_annotation
  }

  data = {
    "workflow-worker.json" = local.dashboard_json
  }

  lifecycle {
    precondition {
      condition     = can(jsondecode(local.dashboard_json).uid)
      error_message = "Dashboard JSON missing or without uid at ${local.dashboard_json_path}: run `just dashboard` (dashboards/generate.py)."
    }
  }
}
