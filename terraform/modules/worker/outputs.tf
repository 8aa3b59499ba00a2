output "release_name" {
  description = "Name of the Helm release."
  value       = try(helm_release.this.name, null)
}

output "namespace" {
  description = "Namespace of the Helm release."
  value       = try(helm_release.this.namespace, null)
}

output "namespace_labels" {
  description = "Labels of the namespace Terraform manages (null when manage_namespace is false)."
  value       = try(kubernetes_namespace_v1.this[0].metadata[0].labels, null)
}

output "revision" {
  description = "Deployed revision of the release."
  value       = try(helm_release.this.metadata.revision, null)
}

output "status" {
  description = "Status of the release (deployed, failed, ...)."
  value       = try(helm_release.this.status, null)
}

output "timeout_seconds" {
  description = "Helm timeout used for install and upgrade."
  value       = var.timeout_seconds
}

output "operation_timeout" {
  description = "The provider's create/update/delete timeouts."
  value       = local.operation_timeout
}
