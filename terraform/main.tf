################################################################################
# Names, and the refusal to plan a workspace without a settings file
################################################################################

module "naming" {
  source = "./modules/naming"

  workspace    = terraform.workspace
  settings_dir = "${path.root}/workspaces"
  environment  = var.environment
  release_name = var.release_name
  namespace    = var.namespace
  extra_labels = var.extra_labels
}

################################################################################
# Worker (Helm release of helm/workflow-worker)
################################################################################

module "worker" {
  source = "./modules/worker"

  release_name     = module.naming.release_name
  namespace        = module.naming.namespace
  create_namespace = var.create_namespace
  timeout_seconds  = var.helm_timeout_seconds

  # Chart values: passed through unchanged (tests/test_terraform_chart.py renders them the same way).
  image                            = var.image
  image_pull_secrets               = var.image_pull_secrets
  name_override                    = var.name_override
  fullname_override                = var.fullname_override
  worker                           = var.worker
  redis                            = var.redis
  termination_grace_period_seconds = var.termination_grace_period_seconds
  resources                        = var.resources
  pod_annotations                  = var.pod_annotations
  pod_labels                       = var.pod_labels
  node_selector                    = var.node_selector
  tolerations                      = var.tolerations
  affinity_json                    = var.affinity_json
  replica_count                    = var.replica_count
  keda                             = var.keda
  rollout_max_surge_percent        = var.rollout_max_surge_percent
  service_account                  = var.service_account
  service_port                     = var.service_port
  pod_disruption_budget            = var.pod_disruption_budget
  network_policy                   = var.network_policy
  pod_monitor                      = var.pod_monitor
  prometheus_rule                  = var.prometheus_rule
  pod_deletion_cost                = var.pod_deletion_cost
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
  app_name          = module.worker.app_name
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
