output "jobs" {
  description = "The scrape jobs as a list of objects (one job)."
  value       = local.jobs
}

output "additional_scrape_configs_yaml" {
  description = "YAML list of scrape jobs: the content of an additional-scrape-configs Secret key (prometheus-operator, kube-prometheus-stack) or of the prometheus chart's extraScrapeConfigs string."
  value       = yamlencode(local.jobs)
}

output "prometheus_yml" {
  description = "YAML document `scrape_configs: [...]`: a prometheus.yml fragment, loadable as it is through prometheus.yml's scrape_config_files from a mounted ConfigMap."
  value       = yamlencode({ scrape_configs = local.jobs })
}
