output "values" {
  description = "The chart values as an object (keys as in helm/workflow-worker/values.yaml)."
  value       = local.values
}

output "yaml" {
  description = "The chart values as YAML (yamlencode), for helm_release.values or `helm -f`."
  value       = yamlencode(local.values)
}

output "app_name" {
  description = "Value of the pods' app.kubernetes.io/name label (chart.name_override, else workflow-worker); the scrape config keeps pods by it."
  value       = local.app_name
}

output "termination_grace_period_seconds" {
  description = "Grace period rendered into the chart (chart.worker.shutdown_timeout_seconds + 30 s unless set)."
  value       = local.termination_grace_period_seconds
}

output "rollout_timeout_seconds" {
  description = "Helm timeout that covers a rolling update with full drains: surge batches x (grace period + 120 s pod start), at least 900 s."
  value       = local.rollout_timeout_seconds
}

output "helm_timeout_seconds" {
  description = "Helm's timeout for install and upgrade: helm_timeout_seconds, else rollout_timeout_seconds."
  value       = local.helm_timeout_seconds
}

output "operation_timeout_seconds" {
  description = "The helm provider's own create/update/delete timeouts (its `timeouts`): twice Helm's timeout (an atomic upgrade may wait, then roll back) plus 300 s."
  value       = local.operation_timeout_seconds
}
