################################################################################
# Namespace
################################################################################

resource "kubernetes_namespace_v1" "this" {
  count = var.manage_namespace ? 1 : 0

  metadata {
    name   = var.namespace
    labels = var.namespace_labels
  }
}

################################################################################
# Release
################################################################################

locals {
  # Relative to the working directory, so the state does not record one machine's absolute path.
  chart_path = coalesce(var.chart_path, "${path.module}/../../../helm/workflow-worker")
  # Through the resource when Terraform owns the namespace, so it exists before the release.
  namespace         = try(kubernetes_namespace_v1.this[0].metadata[0].name, var.namespace)
  operation_timeout = "${var.operation_timeout_seconds}s"
}

resource "helm_release" "this" {
  name             = var.release_name
  chart            = local.chart_path
  namespace        = local.namespace
  create_namespace = false

  # All settings in one YAML document built from the typed chart object; no `set` list.
  values = [var.values_yaml]

  wait            = true
  atomic          = var.atomic
  cleanup_on_fail = true
  timeout         = var.timeout_seconds
  max_history     = var.max_history
  lint            = true

  # Provider 3.1 cancels an operation after 20 minutes unless told otherwise, shorter than a
  # production rollout (timeout_seconds) plus an atomic rollback.
  timeouts = {
    create = local.operation_timeout
    update = local.operation_timeout
    delete = local.operation_timeout
  }
}
