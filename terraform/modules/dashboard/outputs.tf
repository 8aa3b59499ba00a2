output "mode" {
  description = "How the dashboard is delivered (configmap or grafana)."
  value       = var.mode
}

output "dashboard_uid" {
  description = "uid of the dashboard (from its JSON)."
  value       = try(jsondecode(local.dashboard_json).uid, null)
}

output "url" {
  description = "URL of the dashboard in Grafana (mode grafana; null otherwise)."
  value       = try(grafana_dashboard.this[0].url, null)
}

output "configmap_name" {
  description = "Name of the sidecar ConfigMap (mode configmap; null otherwise)."
  value       = try(kubernetes_config_map_v1.this[0].metadata[0].name, null)
}
