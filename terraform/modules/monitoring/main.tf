################################################################################
# Scrape config (provider-free, unit-tested in ../scrape-config)
################################################################################

module "scrape_config" {
  source = "../scrape-config"

  job_name        = var.job_name
  namespaces      = var.target_namespaces
  app_name        = var.app_name
  scrape_interval = var.scrape_interval
  scrape_timeout  = var.scrape_timeout
  extra_labels    = var.extra_labels
}

locals {
  key = coalesce(var.key, var.delivery == "secret" ? "additional-scrape-configs.yaml" : "workflow-worker-scrape.yml")
}

################################################################################
# Delivery
################################################################################

resource "kubernetes_secret_v1" "this" {
  count = var.delivery == "secret" ? 1 : 0

  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = var.labels
  }

  type = "Opaque"
  data = {
    (local.key) = module.scrape_config.additional_scrape_configs_yaml
  }
}

resource "kubernetes_config_map_v1" "this" {
  count = var.delivery == "configmap" ? 1 : 0

  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = var.labels
  }

  data = {
    (local.key) = module.scrape_config.prometheus_yml
  }
}
