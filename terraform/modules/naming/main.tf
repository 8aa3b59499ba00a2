locals {
  namespace = var.namespace != "" ? var.namespace : "workflow-worker-${var.workspace}"

  labels = merge(var.extra_labels, {
    "app.kubernetes.io/part-of"    = "workflow-worker"
    "app.kubernetes.io/instance"   = var.release_name
    "app.kubernetes.io/managed-by" = "terraform"
    "workflow-worker/environment"  = var.workspace
  })

  # The namespace Terraform creates for the worker: Pod Security admission enforces the level
  # (restricted by default, which the chart meets) and always warns and audits at restricted.
  namespace_labels = merge(local.labels, {
    "pod-security.kubernetes.io/enforce"         = var.pod_security_level
    "pod-security.kubernetes.io/enforce-version" = "latest"
    "pod-security.kubernetes.io/warn"            = "restricted"
    "pod-security.kubernetes.io/warn-version"    = "latest"
    "pod-security.kubernetes.io/audit"           = "restricted"
    "pod-security.kubernetes.io/audit-version"   = "latest"
  })

  # Names of the objects created next to the release. Objects in shared namespaces (monitoring,
  # grafana) carry the workspace so that two environments in one cluster do not collide.
  scrape_job_name          = "${var.release_name}-${var.workspace}"
  scrape_config_name       = "${var.release_name}-${var.workspace}-scrape-config"
  dashboard_configmap_name = "${var.release_name}-${var.workspace}-dashboard"
}
