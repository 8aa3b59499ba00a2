locals {
  namespace = var.namespace != "" ? var.namespace : "workflow-worker-${var.workspace}"

  labels = merge(var.extra_labels, {
    "app.kubernetes.io/part-of"    = "workflow-worker"
    "app.kubernetes.io/instance"   = var.release_name
    "app.kubernetes.io/managed-by" = "terraform"
    "workflow-worker/environment"  = var.workspace
  })

  # Names of the objects created next to the release. Objects in shared namespaces (monitoring,
  # grafana) carry the workspace so that two environments in one cluster do not collide.
  scrape_job_name          = "${var.release_name}-${var.workspace}"
  scrape_config_name       = "${var.release_name}-${var.workspace}-scrape-config"
  dashboard_configmap_name = "${var.release_name}-${var.workspace}-dashboard"
}
