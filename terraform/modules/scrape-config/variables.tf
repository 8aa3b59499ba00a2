variable "job_name" {
  description = "Prometheus job name (the job label of every scraped series)."
  type        = string
  default     = "workflow-worker"
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z_][a-zA-Z0-9_.-]{0,127}$", var.job_name))
    error_message = "job_name must start with a letter or '_' and hold at most 128 letters, digits, '_', '.', '-'."
  }
}

variable "namespaces" {
  description = "Namespaces in which Kubernetes service discovery looks for worker pods. Empty: all namespaces."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for n in var.namespaces : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", n))])
    error_message = "namespaces must hold namespace names (DNS-1123 labels)."
  }
  validation {
    condition     = length(distinct(var.namespaces)) == length(var.namespaces)
    error_message = "namespaces must not repeat a namespace."
  }
}

variable "app_name" {
  description = "Value of the app.kubernetes.io/name pod label that marks the worker's pods (the chart name, or its nameOverride)."
  type        = string
  default     = "workflow-worker"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.app_name))
    error_message = "app_name must be a DNS-1123 label (the chart's name label)."
  }
}

variable "scrape_interval" {
  description = "Scrape interval of the job, a Prometheus duration (e.g. 30s). null: the Prometheus global interval."
  type        = string
  default     = "30s"

  validation {
    condition     = var.scrape_interval == null || can(regex("^([0-9]+(ms|s|m|h))+$", coalesce(var.scrape_interval, "-")))
    error_message = "scrape_interval must be null or a Prometheus duration such as 15s, 30s or 1m."
  }
}

variable "scrape_timeout" {
  description = "Scrape timeout of the job, a Prometheus duration no longer than the interval. null: the Prometheus global timeout."
  type        = string
  default     = "10s"

  validation {
    condition     = var.scrape_timeout == null || can(regex("^([0-9]+(ms|s|m|h))+$", coalesce(var.scrape_timeout, "-")))
    error_message = "scrape_timeout must be null or a Prometheus duration such as 10s."
  }
  validation {
    # Only single-unit durations are compared; Prometheus itself rejects the rest at load time.
    condition = try(
      tonumber(regex("^([0-9]+)(ms|s|m|h)$", var.scrape_timeout)[0]) * lookup({ ms = 1, s = 1000, m = 60000, h = 3600000 }, regex("^([0-9]+)(ms|s|m|h)$", var.scrape_timeout)[1]) <=
      tonumber(regex("^([0-9]+)(ms|s|m|h)$", var.scrape_interval)[0]) * lookup({ ms = 1, s = 1000, m = 60000, h = 3600000 }, regex("^([0-9]+)(ms|s|m|h)$", var.scrape_interval)[1]),
      true,
    )
    error_message = "scrape_timeout must not be longer than scrape_interval."
  }
}

variable "extra_labels" {
  description = "Static labels added to every target of the job (e.g. { environment = \"production\" })."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for k in keys(var.extra_labels) : can(regex("^[a-zA-Z_][a-zA-Z0-9_]*$", k)) && !startswith(k, "__")])
    error_message = "extra_labels keys must be Prometheus label names (letters, digits, '_'; not starting with '__')."
  }
}
