output "release_name" {
  description = "Name of the Helm release."
  value       = try(helm_release.this.name, null)
}

output "namespace" {
  description = "Namespace of the Helm release."
  value       = try(helm_release.this.namespace, null)
}

output "revision" {
  description = "Deployed revision of the release."
  value       = try(helm_release.this.metadata.revision, null)
}

output "status" {
  description = "Status of the release (deployed, failed, ...)."
  value       = try(helm_release.this.status, null)
}

output "values_yaml" {
  description = "The values passed to the chart (no secrets: the Redis password stays in its Secret)."
  value       = module.values.yaml
}

output "app_name" {
  description = "Value of the pods' app.kubernetes.io/name label."
  value       = module.values.app_name
}

output "timeout_seconds" {
  description = "Helm timeout used for install and upgrade."
  value       = local.timeout
}
