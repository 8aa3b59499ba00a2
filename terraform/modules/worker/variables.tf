################################################################################
# Release
################################################################################

variable "release_name" {
  description = "Helm release name (at most 53 characters)."
  type        = string
  default     = "workflow-worker"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,51}[a-z0-9])?$", var.release_name))
    error_message = "release_name must be a DNS-1123 label of at most 53 characters (Helm's limit), starting with a letter."
  }
}

variable "namespace" {
  description = "Namespace of the release."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label (lower case, digits, '-', at most 63 characters)."
  }
}

variable "manage_namespace" {
  description = "Create the namespace (kubernetes_namespace_v1) with namespace_labels, e.g. the Pod Security labels. false: the namespace exists already and is managed elsewhere."
  type        = bool
  default     = true
  nullable    = false
}

variable "namespace_labels" {
  description = "Labels of the namespace when manage_namespace is true (the naming module's namespace_labels: Pod Security admission and ownership)."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "chart_path" {
  description = "Path of the chart. null: this repository's helm/workflow-worker, relative to the module."
  type        = string
  default     = null
}

variable "values_yaml" {
  description = "The chart values as one YAML document (the values module's yaml output)."
  type        = string
  nullable    = false

  validation {
    condition     = can(yamldecode(var.values_yaml).image.repository)
    error_message = "values_yaml must be the chart values rendered by modules/values (it has no image.repository)."
  }
}

variable "timeout_seconds" {
  description = "Helm's timeout for install and upgrade (the values module's helm_timeout_seconds)."
  type        = number
  nullable    = false

  validation {
    condition     = var.timeout_seconds >= 300
    error_message = "timeout_seconds must be at least 300."
  }
}

variable "operation_timeout_seconds" {
  description = "The helm provider's own create/update/delete timeouts (its `timeouts`, 20 minutes by default), which must outlast Helm's timeout and an atomic rollback (the values module's operation_timeout_seconds)."
  type        = number
  nullable    = false

  validation {
    condition     = var.operation_timeout_seconds > var.timeout_seconds
    error_message = "operation_timeout_seconds must be longer than timeout_seconds, or the provider cancels Helm while it still waits."
  }
}

variable "atomic" {
  description = "Roll back a failed upgrade and uninstall a failed install (implies wait)."
  type        = bool
  default     = true
  nullable    = false
}

variable "max_history" {
  description = "Release revisions Helm keeps (provider default 0: unlimited)."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = var.max_history == floor(var.max_history) && var.max_history >= 1
    error_message = "max_history must be a whole number, at least 1."
  }
}
