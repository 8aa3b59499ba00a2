################################################################################
# Image
################################################################################

variable "image" {
  description = <<-EOT
    Container image of the worker.
    - repository: image repository without tag, e.g. ghcr.io/example/workflow-worker.
    - tag: an immutable tag (never "latest").
    - pull_policy: Always, IfNotPresent or Never (default IfNotPresent).
  EOT
  type = object({
    repository  = string
    tag         = string
    pull_policy = optional(string, "IfNotPresent")
  })
  nullable = false

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?$", var.image.repository)) && !strcontains(var.image.repository, "@")
    error_message = "image.repository must be an image reference without tag or digest, in lower case (e.g. ghcr.io/example/workflow-worker)."
  }
  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image.tag))
    error_message = "image.tag must be a non-empty Docker tag (letters, digits, '_', '.', '-'; at most 128 characters)."
  }
  validation {
    condition     = var.image.tag != "latest"
    error_message = "image.tag must not be \"latest\": pin an immutable tag so that a rollout is reproducible."
  }
  validation {
    condition     = contains(["Always", "IfNotPresent", "Never"], var.image.pull_policy)
    error_message = "image.pull_policy must be one of Always, IfNotPresent, Never."
  }
}

variable "image_pull_secrets" {
  description = "Names of existing Secrets of type kubernetes.io/dockerconfigjson used to pull the image."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for s in var.image_pull_secrets : can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", s))])
    error_message = "image_pull_secrets must hold Kubernetes Secret names (lower-case DNS subdomains)."
  }
}

################################################################################
# Names
################################################################################

variable "name_override" {
  description = "Replaces the chart name in object names and in the app.kubernetes.io/name label (empty: workflow-worker)."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.name_override == "" || can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.name_override))
    error_message = "name_override must be empty or a DNS-1123 label (lower case, digits, '-', at most 63 characters, starting with a letter)."
  }
}

variable "fullname_override" {
  description = "Replaces the full object name prefix (empty: derived from the release name by the chart)."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.fullname_override == "" || can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.fullname_override))
    error_message = "fullname_override must be empty or a DNS-1123 label (lower case, digits, '-', at most 63 characters, starting with a letter)."
  }
}

################################################################################
# Worker process (the chart's ConfigMap of WORKER_* variables)
################################################################################

variable "worker" {
  description = <<-EOT
    Settings of the worker process (rendered as WORKER_* variables). Every attribute is optional:
    - queue (workflow:queue), concurrency (50 jobs per pod), http_port (8080),
    - shutdown_timeout_seconds (300: drain budget after SIGTERM), lease_seconds (30),
    - job_timeout_seconds (600), max_attempts (3), result_ttl_seconds (86400),
    - workflows ("workflow_worker.builtin:WORKFLOWS", a module:attribute registry),
    - log_format (json | text | auto), log_level (DEBUG | INFO | WARNING | ERROR | CRITICAL),
    - benchmark { enabled (false), min_seconds (2), max_seconds (30) },
    - extra_env: map of extra NAME = value variables; never secrets.
  EOT
  type = object({
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
  })
  default  = {}
  nullable = false

  validation {
    condition     = length(var.worker.queue) > 0 && length(var.worker.queue) <= 200 && !can(regex("\\s", var.worker.queue))
    error_message = "worker.queue must be a non-empty Redis key of at most 200 characters without whitespace."
  }
  validation {
    condition     = var.worker.concurrency == floor(var.worker.concurrency) && var.worker.concurrency >= 1 && var.worker.concurrency <= 1000
    error_message = "worker.concurrency must be a whole number from 1 to 1000."
  }
  validation {
    condition     = var.worker.http_port == floor(var.worker.http_port) && var.worker.http_port >= 1024 && var.worker.http_port <= 65535
    error_message = "worker.http_port must be a whole number from 1024 to 65535 (the container runs as non-root)."
  }
  validation {
    condition     = var.worker.shutdown_timeout_seconds == floor(var.worker.shutdown_timeout_seconds) && var.worker.shutdown_timeout_seconds >= 1
    error_message = "worker.shutdown_timeout_seconds must be a whole number of seconds, at least 1."
  }
  validation {
    condition     = var.worker.lease_seconds == floor(var.worker.lease_seconds) && var.worker.lease_seconds >= 5
    error_message = "worker.lease_seconds must be a whole number of seconds, at least 5."
  }
  validation {
    condition     = var.worker.job_timeout_seconds == floor(var.worker.job_timeout_seconds) && var.worker.job_timeout_seconds >= 1
    error_message = "worker.job_timeout_seconds must be a whole number of seconds, at least 1."
  }
  validation {
    condition     = var.worker.max_attempts == floor(var.worker.max_attempts) && var.worker.max_attempts >= 1
    error_message = "worker.max_attempts must be a whole number, at least 1."
  }
  validation {
    condition     = var.worker.result_ttl_seconds == floor(var.worker.result_ttl_seconds) && var.worker.result_ttl_seconds >= 60
    error_message = "worker.result_ttl_seconds must be a whole number of seconds, at least 60."
  }
  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$", var.worker.workflows))
    error_message = "worker.workflows must have the form module.path:ATTRIBUTE (e.g. workflow_worker.builtin:WORKFLOWS)."
  }
  validation {
    condition     = contains(["json", "text", "auto"], var.worker.log_format)
    error_message = "worker.log_format must be one of json, text, auto."
  }
  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.worker.log_level)
    error_message = "worker.log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL."
  }
  validation {
    condition     = var.worker.benchmark.min_seconds >= 0 && var.worker.benchmark.min_seconds <= var.worker.benchmark.max_seconds
    error_message = "worker.benchmark needs 0 <= min_seconds <= max_seconds."
  }
  validation {
    condition     = alltrue([for k in keys(var.worker.extra_env) : can(regex("^[A-Z_][A-Z0-9_]*$", k))])
    error_message = "worker.extra_env keys must be environment variable names (upper case, digits, '_')."
  }
  validation {
    condition     = alltrue([for k in keys(var.worker.extra_env) : !can(regex("PASSWORD|SECRET|TOKEN|CREDENTIAL|API_KEY", k))])
    error_message = "worker.extra_env must not carry secrets (no PASSWORD, SECRET, TOKEN, CREDENTIAL or API_KEY in a name): it is rendered into a ConfigMap."
  }
}

################################################################################
# Redis
################################################################################

variable "redis" {
  description = <<-EOT
    Redis the worker and KEDA connect to. The password is never a value here: name an existing Secret.
    - mode: standalone | sentinel | cluster (the KEDA trigger type follows).
    - host: address of the Redis (standalone, cluster) or of a sentinel (sentinel); no scheme.
    - port (6379), database (0; must be 0 in cluster mode), username ("").
    - existing_secret: name of an existing Secret holding the password ("" = no password).
    - existing_secret_password_key: key in that Secret (redis-password).
    - tls { enabled (false), ca_secret (""), ca_key (ca.crt) }.
    - sentinel { master_name (mymaster), port (26379), password_from_secret (false: also give KEDA
      the password for Sentinels started with requirepass) }.
  EOT
  type = object({
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
    }), {})
  })
  nullable = false

  validation {
    condition     = contains(["standalone", "sentinel", "cluster"], var.redis.mode)
    error_message = "redis.mode must be one of standalone, sentinel, cluster."
  }
  validation {
    condition     = can(regex("^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])$", var.redis.host))
    error_message = "redis.host must be a host name or IP address without scheme, port or credentials (e.g. redis-master.redis.svc.cluster.local)."
  }
  validation {
    condition     = var.redis.port == floor(var.redis.port) && var.redis.port >= 1 && var.redis.port <= 65535
    error_message = "redis.port must be a whole number from 1 to 65535."
  }
  validation {
    condition     = var.redis.database == floor(var.redis.database) && var.redis.database >= 0 && var.redis.database <= 15
    error_message = "redis.database must be a whole number from 0 to 15."
  }
  validation {
    condition     = var.redis.mode != "cluster" || var.redis.database == 0
    error_message = "redis.database must be 0 when redis.mode is cluster (Redis Cluster has only database 0)."
  }
  validation {
    condition     = var.redis.existing_secret == "" || can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.redis.existing_secret))
    error_message = "redis.existing_secret must be empty or the name of a Kubernetes Secret (a lower-case DNS subdomain); it names a Secret, it is never the password."
  }
  validation {
    condition     = can(regex("^[-._a-zA-Z0-9]{1,253}$", var.redis.existing_secret_password_key))
    error_message = "redis.existing_secret_password_key must be a valid Secret key (letters, digits, '-', '_', '.')."
  }
  validation {
    condition     = var.redis.tls.ca_secret == "" || var.redis.tls.enabled
    error_message = "redis.tls.ca_secret is set but redis.tls.enabled is false: enable TLS or drop the CA Secret."
  }
  validation {
    condition     = var.redis.sentinel.port == floor(var.redis.sentinel.port) && var.redis.sentinel.port >= 1 && var.redis.sentinel.port <= 65535
    error_message = "redis.sentinel.port must be a whole number from 1 to 65535."
  }
  validation {
    condition     = !var.redis.sentinel.password_from_secret || var.redis.existing_secret != ""
    error_message = "redis.sentinel.password_from_secret needs redis.existing_secret."
  }
  validation {
    condition     = length(var.redis.sentinel.master_name) > 0
    error_message = "redis.sentinel.master_name must not be empty."
  }
}

################################################################################
# Pod
################################################################################

variable "termination_grace_period_seconds" {
  description = "Pod grace period after SIGTERM. null: worker.shutdown_timeout_seconds + 30 s. Must exceed worker.shutdown_timeout_seconds + 15 s (the chart's requeue margin)."
  type        = number
  default     = null

  validation {
    condition     = var.termination_grace_period_seconds == null || try(var.termination_grace_period_seconds == floor(var.termination_grace_period_seconds) && var.termination_grace_period_seconds > var.worker.shutdown_timeout_seconds + 15, false)
    error_message = "termination_grace_period_seconds must be a whole number greater than worker.shutdown_timeout_seconds + 15 (drain, then requeue), or the kubelet kills jobs that are still draining."
  }
}

variable "resources" {
  description = "CPU and memory of the worker container: requests and limits, each { cpu, memory } (default 1 CPU and 3Gi for both)."
  type = object({
    requests = optional(object({
      cpu    = optional(string, "1")
      memory = optional(string, "3Gi")
    }), {})
    limits = optional(object({
      cpu    = optional(string, "1")
      memory = optional(string, "3Gi")
    }), {})
  })
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for c in [var.resources.requests.cpu, var.resources.limits.cpu] : can(regex("^([0-9]+m|[0-9]+(\\.[0-9]+)?)$", c))])
    error_message = "resources cpu must be a Kubernetes CPU quantity such as \"1\", \"0.5\" or \"500m\"."
  }
  validation {
    condition     = alltrue([for m in [var.resources.requests.memory, var.resources.limits.memory] : can(regex("^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$", m))])
    error_message = "resources memory must be a Kubernetes memory quantity such as \"3Gi\" or \"512Mi\"."
  }
}

variable "pod_annotations" {
  description = "Extra annotations on the worker pods (the chart adds the prometheus.io/* ones)."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "pod_labels" {
  description = "Extra labels on the worker pods."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = length(setintersection(keys(var.pod_labels), ["app.kubernetes.io/name", "app.kubernetes.io/instance"])) == 0
    error_message = "pod_labels must not set app.kubernetes.io/name or app.kubernetes.io/instance: the chart's selector and the scrape config rely on them."
  }
}

variable "node_selector" {
  description = "Node labels the worker pods must match."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "tolerations" {
  description = "Tolerations of the worker pods: a list of { key, operator (Equal | Exists), value, effect, toleration_seconds }."
  type = list(object({
    key                = optional(string)
    operator           = optional(string, "Equal")
    value              = optional(string)
    effect             = optional(string)
    toleration_seconds = optional(number)
  }))
  default  = []
  nullable = false

  validation {
    condition     = alltrue([for t in var.tolerations : contains(["Equal", "Exists"], t.operator)])
    error_message = "tolerations[*].operator must be Equal or Exists."
  }
  validation {
    condition     = alltrue([for t in var.tolerations : t.effect == null || contains(["NoSchedule", "PreferNoSchedule", "NoExecute"], coalesce(t.effect, "-"))])
    error_message = "tolerations[*].effect must be NoSchedule, PreferNoSchedule or NoExecute (or unset)."
  }
}

variable "affinity_json" {
  description = "Pod affinity as a JSON object string (a Kubernetes Affinity); \"{}\" for none."
  type        = string
  default     = "{}"
  nullable    = false

  validation {
    condition     = can(keys(jsondecode(var.affinity_json)))
    error_message = "affinity_json must be a JSON object, e.g. {\"nodeAffinity\": {...}}."
  }
}

################################################################################
# Scaling
################################################################################

variable "replica_count" {
  description = "Replicas when keda.enabled is false (KEDA owns the replica count otherwise)."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.replica_count == floor(var.replica_count) && var.replica_count >= 0
    error_message = "replica_count must be a whole number, at least 0."
  }
}

variable "keda" {
  description = <<-EOT
    KEDA autoscaling on the queue length and the in-flight hash:
    - enabled (true), assume_installed (false: render the KEDA objects even when the API server does
      not list keda.sh/v1alpha1), min_replica_count (1), max_replica_count (20),
    - polling_interval (15 s), cooldown_period (300 s),
    - list_length (null: worker.concurrency, i.e. one pod per full batch of queued jobs),
    - inflight_trigger (true: second trigger on {queue}:processing so scale-in keeps running jobs),
    - combine_triggers (sum: pods = ceil((queued + in-flight) / list_length), KEDA >= 2.12;
      max: the larger of the two triggers),
    - scale_down { stabilization_window_seconds (600), pods_per_period (1), period_seconds (120) }.
  EOT
  type = object({
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
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.keda.min_replica_count == floor(var.keda.min_replica_count) && var.keda.min_replica_count >= 0
    error_message = "keda.min_replica_count must be a whole number, at least 0."
  }
  validation {
    condition     = var.keda.max_replica_count == floor(var.keda.max_replica_count) && var.keda.max_replica_count >= 1 && var.keda.max_replica_count >= var.keda.min_replica_count
    error_message = "keda.max_replica_count must be a whole number, at least 1 and at least keda.min_replica_count."
  }
  validation {
    condition     = var.keda.polling_interval >= 1 && var.keda.cooldown_period >= 0
    error_message = "keda.polling_interval must be at least 1 s and keda.cooldown_period at least 0 s."
  }
  validation {
    condition     = var.keda.list_length == null || try(var.keda.list_length >= 1 && var.keda.list_length == floor(var.keda.list_length), false)
    error_message = "keda.list_length must be null (= worker.concurrency) or a whole number, at least 1."
  }
  validation {
    condition     = contains(["sum", "max"], var.keda.combine_triggers)
    error_message = "keda.combine_triggers must be sum or max."
  }
  validation {
    condition     = var.keda.scale_down.stabilization_window_seconds >= 0 && var.keda.scale_down.stabilization_window_seconds <= 3600 && var.keda.scale_down.pods_per_period >= 1 && var.keda.scale_down.period_seconds >= 1 && var.keda.scale_down.period_seconds <= 1800
    error_message = "keda.scale_down needs 0 <= stabilization_window_seconds <= 3600 (HPA limit), pods_per_period >= 1 and 1 <= period_seconds <= 1800 (HPA limit)."
  }
}

variable "rollout_max_surge_percent" {
  description = "Share of pods replaced at once in a rolling update (the chart's maxSurge); used only to size the Helm timeout."
  type        = number
  default     = 25
  nullable    = false

  validation {
    condition     = var.rollout_max_surge_percent > 0 && var.rollout_max_surge_percent <= 100
    error_message = "rollout_max_surge_percent must be greater than 0 and at most 100."
  }
}

################################################################################
# Chart features
################################################################################

variable "service_account" {
  description = "ServiceAccount: create (true), name (\"\": the full name), annotations ({}), automount_token (false)."
  type = object({
    create          = optional(bool, true)
    name            = optional(string, "")
    annotations     = optional(map(string), {})
    automount_token = optional(bool, false)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.service_account.name == "" || can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.service_account.name))
    error_message = "service_account.name must be empty or a lower-case DNS subdomain."
  }
}

variable "service_port" {
  description = "Port of the metrics Service."
  type        = number
  default     = 8080
  nullable    = false

  validation {
    condition     = var.service_port == floor(var.service_port) && var.service_port >= 1 && var.service_port <= 65535
    error_message = "service_port must be a whole number from 1 to 65535."
  }
}

variable "pod_disruption_budget" {
  description = "PodDisruptionBudget: enabled (true), max_unavailable (1)."
  type = object({
    enabled         = optional(bool, true)
    max_unavailable = optional(number, 1)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.pod_disruption_budget.max_unavailable == floor(var.pod_disruption_budget.max_unavailable) && var.pod_disruption_budget.max_unavailable >= 1
    error_message = "pod_disruption_budget.max_unavailable must be a whole number, at least 1 (0 would block node drains)."
  }
}

variable "network_policy" {
  description = <<-EOT
    NetworkPolicy: enabled (false), monitoring_namespace allowed to scrape :8080 (monitoring),
    redis_cidr allowed for egress to Redis (0.0.0.0/0), extra_egress_json: a JSON list of extra
    NetworkPolicyEgressRule objects ("[]"), e.g. for the hosts the workflows call.
  EOT
  type = object({
    enabled              = optional(bool, false)
    monitoring_namespace = optional(string, "monitoring")
    redis_cidr           = optional(string, "0.0.0.0/0")
    extra_egress_json    = optional(string, "[]")
  })
  default  = {}
  nullable = false

  validation {
    condition     = can(cidrhost(var.network_policy.redis_cidr, 0))
    error_message = "network_policy.redis_cidr must be a CIDR block such as 10.0.0.0/8."
  }
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.network_policy.monitoring_namespace))
    error_message = "network_policy.monitoring_namespace must be a namespace name (DNS-1123 label)."
  }
  validation {
    condition     = startswith(trimspace(var.network_policy.extra_egress_json), "[") && try(alltrue([for r in jsondecode(var.network_policy.extra_egress_json) : can(keys(r))]), false)
    error_message = "network_policy.extra_egress_json must be a JSON list of objects (NetworkPolicyEgressRule), e.g. [{\"ports\": [{\"port\": 443}]}]."
  }
}

variable "pod_monitor" {
  description = "prometheus-operator PodMonitor: enabled (false), labels ({}; kube-prometheus-stack wants release = <its release>), interval (30s)."
  type = object({
    enabled  = optional(bool, false)
    labels   = optional(map(string), {})
    interval = optional(string, "30s")
  })
  default  = {}
  nullable = false

  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h)$", var.pod_monitor.interval))
    error_message = "pod_monitor.interval must be a Prometheus duration such as 30s or 1m."
  }
}

variable "prometheus_rule" {
  description = "prometheus-operator PrometheusRule with the worker's alerts: enabled (false), labels ({})."
  type = object({
    enabled = optional(bool, false)
    labels  = optional(map(string), {})
  })
  default  = {}
  nullable = false
}

variable "pod_deletion_cost" {
  description = <<-EOT
    Scale-in that removes idle pods first: each worker keeps its pod's pod-deletion-cost annotation
    equal to its running jobs. enabled (false; adds a Role with patch on the namespace's pods and
    mounts the API token: use a namespace of its own), interval_seconds between two PATCHes of one
    pod at most (30), api_server_cidr allowed for egress on 443/6443 when the NetworkPolicy is on
    ("0.0.0.0/0").
  EOT
  type = object({
    enabled          = optional(bool, false)
    interval_seconds = optional(number, 30)
    api_server_cidr  = optional(string, "0.0.0.0/0")
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.pod_deletion_cost.interval_seconds == floor(var.pod_deletion_cost.interval_seconds) && var.pod_deletion_cost.interval_seconds >= 1 && var.pod_deletion_cost.interval_seconds <= 3600
    error_message = "pod_deletion_cost.interval_seconds must be a whole number from 1 to 3600."
  }
  validation {
    condition     = can(cidrhost(var.pod_deletion_cost.api_server_cidr, 0))
    error_message = "pod_deletion_cost.api_server_cidr must be a CIDR block such as 10.0.0.0/8."
  }
}
