################################################################################
# Delivery
################################################################################

variable "delivery" {
  description = <<-EOT
    How Prometheus receives the scrape config:
    - secret: a Secret holding a YAML list of jobs, for prometheus-operator / kube-prometheus-stack
      (prometheus.prometheusSpec.additionalScrapeConfigsSecret { enabled, name, key }).
    - configmap: a ConfigMap holding a `scrape_configs:` document, for a Prometheus that mounts it
      and lists it in prometheus.yml's scrape_config_files (e.g. the prometheus chart with
      extraConfigmapMounts).
  EOT
  type        = string
  default     = "secret"
  nullable    = false

  validation {
    condition     = contains(["secret", "configmap"], var.delivery)
    error_message = "delivery must be secret or configmap."
  }
}

variable "name" {
  description = "Name of the Secret or ConfigMap."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.name))
    error_message = "name must be a lower-case DNS subdomain (at most 253 characters)."
  }
}

variable "namespace" {
  description = "Namespace of the Secret or ConfigMap: the one Prometheus runs in."
  type        = string
  default     = "monitoring"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label."
  }
}

variable "key" {
  description = "Data key inside the Secret or ConfigMap. null: additional-scrape-configs.yaml (secret) or workflow-worker-scrape.yml (configmap)."
  type        = string
  default     = null

  validation {
    condition     = var.key == null || can(regex("^[-._a-zA-Z0-9]{1,253}$", coalesce(var.key, "-")))
    error_message = "key must be null or a valid data key (letters, digits, '-', '_', '.')."
  }
}

variable "labels" {
  description = "Labels of the Secret or ConfigMap."
  type        = map(string)
  default     = {}
  nullable    = false
}

################################################################################
# Scrape job (passed to ../scrape-config)
################################################################################

variable "job_name" {
  description = "Prometheus job name."
  type        = string
  default     = "workflow-worker"
  nullable    = false
}

variable "target_namespaces" {
  description = "Namespaces in which to discover worker pods. Empty: all namespaces."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "app_name" {
  description = "app.kubernetes.io/name label value of the worker pods."
  type        = string
  default     = "workflow-worker"
  nullable    = false
}

variable "scrape_interval" {
  description = "Scrape interval (null: Prometheus' global interval)."
  type        = string
  default     = "30s"
}

variable "scrape_timeout" {
  description = "Scrape timeout (null: Prometheus' global timeout)."
  type        = string
  default     = "10s"
}

variable "extra_labels" {
  description = "Static labels added to every scraped target."
  type        = map(string)
  default     = {}
  nullable    = false
}
