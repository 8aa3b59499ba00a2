################################################################################
# Workspace and cluster
################################################################################

variable "environment" {
  description = "Environment these settings are for; must equal the selected workspace (terraform workspace select -or-create <environment>)."
  type        = string
  nullable    = false
}

variable "kube_context" {
  description = "kubeconfig context of the environment's cluster."
  type        = string
  nullable    = false

  validation {
    condition     = length(var.kube_context) > 0
    error_message = "kube_context must name a context of the kubeconfig."
  }
}

variable "kubeconfig_path" {
  description = "Path of the kubeconfig file."
  type        = string
  default     = "~/.kube/config"
  nullable    = false
}

variable "grafana_url" {
  description = "Grafana URL for dashboard.mode = \"grafana\" (the token comes from the GRAFANA_AUTH environment variable). Empty otherwise."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.grafana_url == "" || can(regex("^https?://", var.grafana_url))
    error_message = "grafana_url must be empty or an http(s) URL."
  }
}

################################################################################
# Release
################################################################################

variable "release_name" {
  description = "Helm release name."
  type        = string
  default     = "workflow-worker"
  nullable    = false
}

variable "namespace" {
  description = "Namespace of the worker. Empty: workflow-worker-<workspace>."
  type        = string
  default     = ""
  nullable    = false
}

variable "manage_namespace" {
  description = "Terraform creates and owns the worker's namespace, labelled for Pod Security admission (pod_security_level). false: the namespace exists and is managed elsewhere (then label it yourself)."
  type        = bool
  default     = true
  nullable    = false
}

variable "pod_security_level" {
  description = "Pod Security Standard the namespace enforces: restricted (default; the chart meets it), baseline or privileged. Warn and audit stay at restricted."
  type        = string
  default     = "restricted"
  nullable    = false
}

variable "helm_timeout_seconds" {
  description = "Helm timeout. null: computed to cover a rolling update with full drains (at least 900 s). The provider's own timeouts follow (twice this plus 300 s)."
  type        = number
  default     = null
}

variable "rollout_max_surge_percent" {
  description = "Share of pods replaced at once in a rolling update (the chart's maxSurge); used only to size the Helm timeout."
  type        = number
  default     = 25
  nullable    = false
}

variable "extra_labels" {
  description = "Labels added to the objects Terraform creates next to the release (scrape config, dashboard)."
  type        = map(string)
  default     = {}
  nullable    = false
}

################################################################################
# Monitoring and dashboard
################################################################################

variable "monitoring" {
  description = <<-EOT
    Prometheus scrape config of this environment's workers:
    - enabled (true), delivery (secret | configmap; see modules/monitoring),
    - namespace: Prometheus' namespace (monitoring),
    - scrape_interval (30s), scrape_timeout (10s).
  EOT
  type = object({
    enabled         = optional(bool, true)
    delivery        = optional(string, "secret")
    namespace       = optional(string, "monitoring")
    scrape_interval = optional(string, "30s")
    scrape_timeout  = optional(string, "10s")
  })
  # Spelled out (not {}) so that static scanners such as checkov can resolve the module counts.
  default = {
    enabled         = true
    delivery        = "secret"
    namespace       = "monitoring"
    scrape_interval = "30s"
    scrape_timeout  = "10s"
  }
  nullable = false

  validation {
    condition     = contains(["secret", "configmap"], var.monitoring.delivery)
    error_message = "monitoring.delivery must be secret or configmap."
  }
  # Two scrape paths would scrape every pod twice and double every rate.
  validation {
    condition     = !(var.monitoring.enabled && var.chart.pod_monitor.enabled)
    error_message = "monitoring.enabled (the annotation-based scrape job) and chart.pod_monitor.enabled both scrape the worker pods: choose one (monitoring = { enabled = false } with the PodMonitor)."
  }
}

variable "dashboard" {
  description = <<-EOT
    Grafana dashboard. One Grafana usually serves several environments and the dashboard's uid is
    fixed, so enable it in one workspace per Grafana.
    - enabled (false), mode (configmap | grafana), namespace of the ConfigMap (monitoring),
    - folder_uid (grafana mode), folder_annotation (configmap mode, e.g. { grafana_folder = "Workers" }).
  EOT
  type = object({
    enabled           = optional(bool, false)
    mode              = optional(string, "configmap")
    namespace         = optional(string, "monitoring")
    folder_uid        = optional(string, "")
    folder_annotation = optional(map(string), {})
  })
  # Spelled out (not {}) so that static scanners such as checkov can resolve the module counts.
  default = {
    enabled           = false
    mode              = "configmap"
    namespace         = "monitoring"
    folder_uid        = ""
    folder_annotation = {}
  }
  nullable = false

  validation {
    condition     = contains(["configmap", "grafana"], var.dashboard.mode)
    error_message = "dashboard.mode must be configmap or grafana."
  }
  validation {
    condition     = var.dashboard.mode != "grafana" || var.grafana_url != ""
    error_message = "dashboard.mode = \"grafana\" needs grafana_url."
  }
}

################################################################################
# Chart values
################################################################################

# The type is a verbatim copy of modules/values/variables.tf's `chart` (a test compares them);
# the rules live there and fail the plan with their own messages.
variable "chart" {
  description = <<-EOT
    Every chart value, as one typed object (the type is modules/values' `chart`, which validates it
    and documents each attribute). Required: image { repository, tag } and redis { host }.
  EOT
  type = object({
    image = object({
      repository  = string
      tag         = string
      digest      = optional(string, "")
      pull_policy = optional(string, "IfNotPresent")
    })
    image_pull_secrets = optional(list(string), [])
    name_override      = optional(string, "")
    fullname_override  = optional(string, "")
    replica_count      = optional(number, 1)
    worker = optional(object({
      queue                    = optional(string, "workflow:queue")
      concurrency              = optional(number, 50)
      http_port                = optional(number, 8080)
      shutdown_timeout_seconds = optional(number, 300)
      lease_seconds            = optional(number, 30)
      job_timeout_seconds      = optional(number, 600)
      max_attempts             = optional(number, 3)
      result_ttl_seconds       = optional(number, 86400)
      workflows                = optional(string, "workflow_worker.builtin:WORKFLOWS")
      log_format               = optional(string, "json")
      log_level                = optional(string, "INFO")
      benchmark = optional(object({
        enabled     = optional(bool, false)
        min_seconds = optional(number, 2)
        max_seconds = optional(number, 30)
      }), {})
      extra_env = optional(map(string), {})
    }), {})
    secret_env = optional(map(object({
      secret = string
      key    = string
    })), {})
    env_from_secrets = optional(list(string), [])
    redis = object({
      mode                         = optional(string, "standalone")
      host                         = string
      port                         = optional(number, 6379)
      database                     = optional(number, 0)
      username                     = optional(string, "")
      existing_secret              = optional(string, "")
      existing_secret_password_key = optional(string, "redis-password")
      tls = optional(object({
        enabled   = optional(bool, false)
        ca_secret = optional(string, "")
        ca_key    = optional(string, "ca.crt")
      }), {})
      sentinel = optional(object({
        master_name          = optional(string, "mymaster")
        port                 = optional(number, 26379)
        password_from_secret = optional(bool, false)
        username             = optional(string, "")
      }), {})
    })
    termination_grace_period_seconds = optional(number)
    security_context = optional(object({
      uid                   = optional(number, 10001)
      gid                   = optional(number, 10001)
      platform_assigned_ids = optional(bool, false)
    }), {})
    probes = optional(object({
      startup = optional(object({
        enabled           = optional(bool, true)
        period_seconds    = optional(number, 2)
        timeout_seconds   = optional(number, 3)
        failure_threshold = optional(number, 30)
      }), {})
      liveness = optional(object({
        initial_delay_seconds = optional(number, 5)
        period_seconds        = optional(number, 10)
        timeout_seconds       = optional(number, 3)
        failure_threshold     = optional(number, 3)
      }), {})
      readiness = optional(object({
        period_seconds    = optional(number, 5)
        timeout_seconds   = optional(number, 3)
        failure_threshold = optional(number, 2)
      }), {})
    }), {})
    resources = optional(object({
      requests = optional(object({
        cpu    = optional(string, "1")
        memory = optional(string, "3Gi")
      }), {})
      limits = optional(object({
        cpu    = optional(string, "1")
        memory = optional(string, "3Gi")
      }), {})
    }), {})
    keda = optional(object({
      enabled           = optional(bool, true)
      assume_installed  = optional(bool, false)
      min_replica_count = optional(number, 1)
      max_replica_count = optional(number, 20)
      polling_interval  = optional(number, 15)
      cooldown_period   = optional(number, 300)
      list_length       = optional(number)
      inflight_trigger  = optional(bool, true)
      combine_triggers  = optional(string, "sum")
      scale_down = optional(object({
        stabilization_window_seconds = optional(number, 600)
        pods_per_period              = optional(number, 1)
        period_seconds               = optional(number, 120)
      }), {})
      fallback = optional(object({
        enabled           = optional(bool, false)
        failure_threshold = optional(number, 3)
        replicas          = optional(number, 2)
        behavior          = optional(string, "currentReplicasIfHigher")
      }), {})
    }), {})
    service_account = optional(object({
      create          = optional(bool, true)
      name            = optional(string, "")
      annotations     = optional(map(string), {})
      automount_token = optional(bool, false)
    }), {})
    service_port = optional(number, 8080)
    pod_disruption_budget = optional(object({
      enabled                       = optional(bool, true)
      max_unavailable               = optional(number, 1)
      unhealthy_pod_eviction_policy = optional(string, "AlwaysAllow")
    }), {})
    network_policy = optional(object({
      enabled           = optional(bool, false)
      redis_cidr        = optional(string, "0.0.0.0/0")
      extra_egress_json = optional(string, "[]")
    }), {})
    scrape_annotations = optional(bool, true)
    pod_monitor = optional(object({
      enabled  = optional(bool, false)
      labels   = optional(map(string), {})
      interval = optional(string, "30s")
    }), {})
    prometheus_rule = optional(object({
      enabled = optional(bool, false)
      labels  = optional(map(string), {})
    }), {})
    pod_deletion_cost = optional(object({
      enabled          = optional(bool, false)
      interval_seconds = optional(number, 30)
      api_server_cidr  = optional(string, "0.0.0.0/0")
    }), {})
    console = optional(object({
      enabled         = optional(bool, false)
      port            = optional(number, 8090)
      existing_secret = optional(string, "")
      token_key       = optional(string, "token")
      username_key    = optional(string, "")
      password_key    = optional(string, "")
      read_only       = optional(bool, false)
      redact          = optional(string, "password,secret,token,api_key,authorization")
      secure_cookies  = optional(bool, false)
      resources = optional(object({
        requests = optional(object({
          cpu    = optional(string, "50m")
          memory = optional(string, "128Mi")
        }), {})
        limits = optional(object({
          cpu    = optional(string, "500m")
          memory = optional(string, "256Mi")
        }), {})
      }), {})
    }), {})
    pod_annotations = optional(map(string), {})
    pod_labels      = optional(map(string), {})
    node_selector   = optional(map(string), {})
    tolerations = optional(list(object({
      key                = optional(string)
      operator           = optional(string, "Equal")
      value              = optional(string)
      effect             = optional(string)
      toleration_seconds = optional(number)
    })), [])
    affinity_json = optional(string, "{}")
    topology_spread = optional(list(object({
      max_skew           = optional(number, 1)
      topology_key       = string
      when_unsatisfiable = optional(string, "ScheduleAnyway")
    })), [])
    priority_class_name      = optional(string, "")
    extra_volumes_json       = optional(string, "[]")
    extra_volume_mounts_json = optional(string, "[]")
  })
  nullable = false
}
