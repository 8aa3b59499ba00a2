output "delivery" {
  description = "How the scrape config is delivered (secret or configmap)."
  value       = var.delivery
}

output "name" {
  description = "Name of the Secret or ConfigMap."
  value       = try(kubernetes_secret_v1.this[0].metadata[0].name, kubernetes_config_map_v1.this[0].metadata[0].name, null)
}

output "namespace" {
  description = "Namespace of the Secret or ConfigMap."
  value       = var.namespace
}

output "key" {
  description = "Data key holding the scrape config."
  value       = local.key
}

output "additional_scrape_configs_yaml" {
  description = "YAML list of scrape jobs (also usable as the prometheus chart's extraScrapeConfigs string)."
  value       = module.scrape_config.additional_scrape_configs_yaml
}

output "prometheus_yml" {
  description = "The `scrape_configs:` document (a prometheus.yml fragment)."
  value       = module.scrape_config.prometheus_yml
}
