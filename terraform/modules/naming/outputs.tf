output "environment" {
  description = "The checked environment name (equal to the selected workspace)."
  value       = var.environment
}

output "settings_file" {
  description = "Path of the settings file of the selected workspace (it exists: the workspace variable is validated)."
  value       = "${var.settings_dir}/${var.workspace}.tfvars"
}

output "release_name" {
  description = "Helm release name."
  value       = var.release_name
}

output "namespace" {
  description = "Namespace of the worker (the namespace variable, else workflow-worker-<workspace>)."
  value       = local.namespace
}

output "namespace_labels" {
  description = "Labels of the worker's namespace: the common labels plus Pod Security admission (enforce pod_security_level; warn and audit restricted)."
  value       = local.namespace_labels
}

output "labels" {
  description = "Labels for the objects Terraform creates next to the release."
  value       = local.labels
}

output "scrape_job_name" {
  description = "Prometheus job name of this environment's workers."
  value       = local.scrape_job_name
}

output "scrape_config_name" {
  description = "Name of the Secret or ConfigMap that carries the scrape config."
  value       = local.scrape_config_name
}

output "dashboard_configmap_name" {
  description = "Name of the Grafana sidecar ConfigMap of the dashboard."
  value       = local.dashboard_configmap_name
}
