output "environment" {
  description = "The workspace (= environment) that was applied."
  value       = module.naming.environment
}

output "namespace" {
  description = "Namespace of the worker."
  value       = module.naming.namespace
}

output "release" {
  description = "Helm release: name, revision, status, Helm's timeout and the provider's operation timeout."
  value = {
    name              = module.worker.release_name
    revision          = module.worker.revision
    status            = module.worker.status
    timeout_seconds   = module.worker.timeout_seconds
    operation_timeout = module.worker.operation_timeout
  }
}

output "scrape_config" {
  description = "Where the scrape config lives (null when monitoring is disabled)."
  value = try({
    delivery  = module.monitoring[0].delivery
    name      = module.monitoring[0].name
    namespace = module.monitoring[0].namespace
    key       = module.monitoring[0].key
  }, null)
}

output "dashboard" {
  description = "Dashboard delivery (null when disabled)."
  value = try({
    mode           = module.dashboard[0].mode
    uid            = module.dashboard[0].dashboard_uid
    url            = module.dashboard[0].url
    configmap_name = module.dashboard[0].configmap_name
  }, null)
}
