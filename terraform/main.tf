################################################################################
# Names, and the refusal to plan a workspace without a settings file
################################################################################

module "naming" {
  source = "./modules/naming"

  workspace          = terraform.workspace
  settings_dir       = "${path.root}/workspaces"
  environment        = var.environment
  release_name       = var.release_name
  namespace          = var.namespace
  extra_labels       = var.extra_labels
  pod_security_level = var.pod_security_level
}

################################################################################
# Chart values (provider-free, unit-tested in modules/values)
################################################################################

module "values" {
  source = "./modules/values"

  chart = var.chart
  # The NetworkPolicy admits the namespace the scrape config is delivered to: one setting.
  monitoring_namespace      = var.monitoring.namespace
  rollout_max_surge_percent = var.rollout_max_surge_percent
  helm_timeout_seconds      = var.helm_timeout_seconds
}

################################################################################
# Worker (namespace with Pod Security labels, Helm release of helm/workflow-worker)
################################################################################

module "worker" {
  source = "./modules/worker"

  release_name              = module.naming.release_name
  namespace                 = module.naming.namespace
  manage_namespace          = var.manage_namespace
  namespace_labels          = module.naming.namespace_labels
  values_yaml               = module.values.yaml
  timeout_seconds           = module.values.helm_timeout_seconds
  operation_timeout_seconds = module.values.operation_timeout_seconds
}

################################################################################
# Prometheus scrape config
################################################################################

module "monitoring" {
  source = "./modules/monitoring"
  count  = var.monitoring.enabled ? 1 : 0

  delivery          = var.monitoring.delivery
  name              = module.naming.scrape_config_name
  namespace         = var.monitoring.namespace
  labels            = module.naming.labels
  job_name          = module.naming.scrape_job_name
  target_namespaces = [module.naming.namespace]
  app_name          = module.values.app_name
  scrape_interval   = var.monitoring.scrape_interval
  scrape_timeout    = var.monitoring.scrape_timeout
  extra_labels      = { environment = module.naming.environment }
}

################################################################################
# Grafana dashboard
################################################################################

module "dashboard" {
  source = "./modules/dashboard"
  count  = var.dashboard.enabled ? 1 : 0

  mode              = var.dashboard.mode
  name              = module.naming.dashboard_configmap_name
  namespace         = var.dashboard.namespace
  labels            = module.naming.labels
  folder_uid        = var.dashboard.folder_uid
  folder_annotation = var.dashboard.folder_annotation
}
