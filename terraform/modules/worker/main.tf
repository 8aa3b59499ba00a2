################################################################################
# Chart values (provider-free, unit-tested in ../values)
################################################################################

module "values" {
  source = "../values"

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
# Release
################################################################################

locals {
  # Relative to the working directory, so the state does not record one machine's absolute path.
  chart_path = coalesce(var.chart_path, "${path.module}/../../../helm/workflow-worker")
  timeout    = coalesce(var.timeout_seconds, module.values.rollout_timeout_seconds)
}

resource "helm_release" "this" {
  name             = var.release_name
  chart            = local.chart_path
  namespace        = var.namespace
  create_namespace = var.create_namespace

  # All settings in one YAML document built from typed variables; no `set` list.
  values = [module.values.yaml]

  wait            = true
  atomic          = var.atomic
  cleanup_on_fail = true
  timeout         = local.timeout
  max_history     = var.max_history
  lint            = true
}
