################################################################################
# Chart values
################################################################################

variable "chart" {
  description = <<-EOT
    Every chart value, as one object in snake_case (keys of helm/workflow-worker/values.yaml).
    Required: image { repository, tag } and redis { host }; everything else has the chart's default.
    - image { repository, tag (never "latest"), digest ("sha256:..."), pull_policy }, image_pull_secrets,
      name_override, fullname_override, replica_count (when KEDA is off).
    - worker { queue, concurrency, http_port, shutdown_timeout_seconds, lease_seconds,
      job_timeout_seconds, max_attempts, result_ttl_seconds, workflows, log_format, log_level,
      benchmark { enabled, min_seconds, max_seconds }, extra_env (non-secret, into the ConfigMap) }.
    - secret_env: { NAME = { secret, key } } environment variables read from Secrets;
      env_from_secrets: Secrets whose keys all become environment variables.
    - redis { mode (standalone | sentinel | cluster), host (no scheme), port, database, username,
      existing_secret (a Secret's name, never the password), existing_secret_password_key,
      tls { enabled, ca_secret, ca_key }, sentinel { master_name, port, password_from_secret,
      username } }.
    - termination_grace_period_seconds (null: worker.shutdown_timeout_seconds + 30),
      security_context { uid, gid, platform_assigned_ids (true on OpenShift: no uid/gid pinned) },
      probes { startup { enabled, period_seconds, timeout_seconds, failure_threshold },
      liveness { initial_delay_seconds, ... }, readiness { ... } }, resources { requests, limits }.
    - keda { enabled, assume_installed, min_replica_count, max_replica_count, polling_interval,
      cooldown_period, list_length (null: worker.concurrency), inflight_trigger, combine_triggers
      (sum | max), scale_down { ... }, fallback { enabled, failure_threshold, replicas, behavior } }.
    - service_account, service_port, pod_disruption_budget { enabled, max_unavailable,
      unhealthy_pod_eviction_policy (AlwaysAllow | IfHealthyBudget) }, network_policy { enabled,
      redis_cidr, extra_egress_json } (its monitoring namespace is the scrape config's),
      scrape_annotations, pod_monitor { enabled, labels, interval }, prometheus_rule { enabled, labels }.
    - pod_deletion_cost { enabled (each worker keeps its pod's pod-deletion-cost annotation equal to
      its running jobs, so scale-in removes idle pods first; adds a Role with patch on the
      namespace's pods and mounts the API token: use a namespace of its own), interval_seconds
      (at most one PATCH per pod per this many seconds, 1-3600), api_server_cidr (egress on
      443/6443 when the NetworkPolicy is on) }.
    - console { enabled (the job console: one Deployment and a Service, never the workers),
      port, existing_secret (a Secret's name, never a credential), token_key, username_key,
      password_key (keys in that Secret), read_only (no actions), redact (payload fields masked),
      secure_cookies, resources { requests { cpu, memory }, limits { cpu, memory } } }.
    - pod_annotations, pod_labels, node_selector, tolerations, affinity_json, topology_spread
      [{ max_skew, topology_key, when_unsatisfiable }], priority_class_name, extra_volumes_json,
      extra_volume_mounts_json (JSON lists of Kubernetes Volume / VolumeMount objects).
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

  # Image

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?$", var.chart.image.repository)) && !strcontains(var.chart.image.repository, "@")
    error_message = "chart.image.repository must be an image reference without tag or digest, in lower case (e.g. ghcr.io/example/workflow-worker)."
  }
  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.chart.image.tag))
    error_message = "chart.image.tag must be a non-empty Docker tag (letters, digits, '_', '.', '-'; at most 128 characters); put a digest in chart.image.digest."
  }
  validation {
    condition     = var.chart.image.tag != "latest"
    error_message = "chart.image.tag must not be \"latest\": pin an immutable tag so that a rollout is reproducible."
  }
  validation {
    condition     = can(regex("^(sha256:[a-f0-9]{64})?$", var.chart.image.digest))
    error_message = "chart.image.digest must be empty or \"sha256:\" followed by 64 lower-case hex digits."
  }
  validation {
    condition     = contains(["Always", "IfNotPresent", "Never"], var.chart.image.pull_policy)
    error_message = "chart.image.pull_policy must be one of Always, IfNotPresent, Never."
  }
  validation {
    condition     = alltrue([for s in concat(var.chart.image_pull_secrets, var.chart.env_from_secrets, [for e in values(var.chart.secret_env) : e.secret]) : can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", s))])
    error_message = "chart.image_pull_secrets, chart.env_from_secrets and chart.secret_env[*].secret must hold Kubernetes Secret names (lower-case DNS subdomains)."
  }

  # Names

  validation {
    condition     = alltrue([for n in [var.chart.name_override, var.chart.fullname_override] : n == "" || can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", n))])
    error_message = "chart.name_override and chart.fullname_override must be empty or DNS-1123 labels (lower case, digits, '-', at most 63 characters, starting with a letter)."
  }

  # Worker process

  validation {
    condition     = length(var.chart.worker.queue) > 0 && length(var.chart.worker.queue) <= 200 && !can(regex("\\s", var.chart.worker.queue))
    error_message = "chart.worker.queue must be a non-empty Redis key of at most 200 characters without whitespace."
  }
  validation {
    condition     = var.chart.worker.concurrency == floor(var.chart.worker.concurrency) && var.chart.worker.concurrency >= 1 && var.chart.worker.concurrency <= 1000
    error_message = "chart.worker.concurrency must be a whole number from 1 to 1000."
  }
  validation {
    condition     = var.chart.worker.http_port == floor(var.chart.worker.http_port) && var.chart.worker.http_port >= 1024 && var.chart.worker.http_port <= 65535
    error_message = "chart.worker.http_port must be a whole number from 1024 to 65535 (the container runs as non-root)."
  }
  validation {
    condition     = var.chart.worker.shutdown_timeout_seconds == floor(var.chart.worker.shutdown_timeout_seconds) && var.chart.worker.shutdown_timeout_seconds >= 1
    error_message = "chart.worker.shutdown_timeout_seconds must be a whole number of seconds, at least 1."
  }
  validation {
    condition     = var.chart.worker.lease_seconds == floor(var.chart.worker.lease_seconds) && var.chart.worker.lease_seconds >= 5
    error_message = "chart.worker.lease_seconds must be a whole number of seconds, at least 5."
  }
  validation {
    condition     = var.chart.worker.job_timeout_seconds == floor(var.chart.worker.job_timeout_seconds) && var.chart.worker.job_timeout_seconds >= 1
    error_message = "chart.worker.job_timeout_seconds must be a whole number of seconds, at least 1."
  }
  validation {
    condition     = var.chart.worker.max_attempts == floor(var.chart.worker.max_attempts) && var.chart.worker.max_attempts >= 1
    error_message = "chart.worker.max_attempts must be a whole number, at least 1."
  }
  validation {
    condition     = var.chart.worker.result_ttl_seconds == floor(var.chart.worker.result_ttl_seconds) && var.chart.worker.result_ttl_seconds >= 60
    error_message = "chart.worker.result_ttl_seconds must be a whole number of seconds, at least 60."
  }
  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$", var.chart.worker.workflows))
    error_message = "chart.worker.workflows must have the form module.path:ATTRIBUTE (e.g. workflow_worker.builtin:WORKFLOWS)."
  }
  validation {
    condition     = contains(["json", "text", "auto"], var.chart.worker.log_format)
    error_message = "chart.worker.log_format must be one of json, text, auto."
  }
  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.chart.worker.log_level)
    error_message = "chart.worker.log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL."
  }
  validation {
    condition     = var.chart.worker.benchmark.min_seconds >= 0 && var.chart.worker.benchmark.min_seconds <= var.chart.worker.benchmark.max_seconds
    error_message = "chart.worker.benchmark needs 0 <= min_seconds <= max_seconds."
  }
  validation {
    condition     = alltrue([for k in concat(keys(var.chart.worker.extra_env), keys(var.chart.secret_env)) : can(regex("^[A-Z_][A-Z0-9_]*$", k))])
    error_message = "chart.worker.extra_env and chart.secret_env keys must be environment variable names (upper case, digits, '_')."
  }
  validation {
    condition     = alltrue([for k in keys(var.chart.worker.extra_env) : !can(regex("PASSWORD|SECRET|TOKEN|CREDENTIAL|API_KEY", k))])
    error_message = "chart.worker.extra_env must not carry secrets (no PASSWORD, SECRET, TOKEN, CREDENTIAL or API_KEY in a name): it is rendered into a ConfigMap. Use chart.secret_env."
  }
  validation {
    condition     = alltrue([for e in values(var.chart.secret_env) : can(regex("^[-._a-zA-Z0-9]{1,253}$", e.key))])
    error_message = "chart.secret_env[*].key must be a Secret key (letters, digits, '-', '_', '.')."
  }

  # Redis

  validation {
    condition     = contains(["standalone", "sentinel", "cluster"], var.chart.redis.mode)
    error_message = "chart.redis.mode must be one of standalone, sentinel, cluster."
  }
  validation {
    condition     = can(regex("^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])$", var.chart.redis.host))
    error_message = "chart.redis.host must be a host name or IP address without scheme, port or credentials (e.g. redis-master.redis.svc.cluster.local)."
  }
  validation {
    condition     = alltrue([for p in [var.chart.redis.port, var.chart.redis.sentinel.port] : p == floor(p) && p >= 1 && p <= 65535])
    error_message = "chart.redis.port and chart.redis.sentinel.port must be whole numbers from 1 to 65535."
  }
  validation {
    condition     = var.chart.redis.database == floor(var.chart.redis.database) && var.chart.redis.database >= 0 && var.chart.redis.database <= 15
    error_message = "chart.redis.database must be a whole number from 0 to 15."
  }
  validation {
    condition     = var.chart.redis.mode != "cluster" || var.chart.redis.database == 0
    error_message = "chart.redis.database must be 0 when chart.redis.mode is cluster (Redis Cluster has only database 0)."
  }
  validation {
    condition     = var.chart.redis.existing_secret == "" || can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.chart.redis.existing_secret))
    error_message = "chart.redis.existing_secret must be empty or the name of a Kubernetes Secret (a lower-case DNS subdomain); it names a Secret, it is never the password."
  }
  validation {
    condition     = can(regex("^[-._a-zA-Z0-9]{1,253}$", var.chart.redis.existing_secret_password_key))
    error_message = "chart.redis.existing_secret_password_key must be a valid Secret key (letters, digits, '-', '_', '.')."
  }
  validation {
    condition     = var.chart.redis.tls.ca_secret == "" || var.chart.redis.tls.enabled
    error_message = "chart.redis.tls.ca_secret is set but chart.redis.tls.enabled is false: enable TLS or drop the CA Secret."
  }
  validation {
    condition     = !var.chart.redis.sentinel.password_from_secret || var.chart.redis.existing_secret != ""
    error_message = "chart.redis.sentinel.password_from_secret needs chart.redis.existing_secret."
  }
  validation {
    condition     = length(var.chart.redis.sentinel.master_name) > 0
    error_message = "chart.redis.sentinel.master_name must not be empty."
  }

  # Pod

  validation {
    condition     = var.chart.termination_grace_period_seconds == null || try(var.chart.termination_grace_period_seconds == floor(var.chart.termination_grace_period_seconds) && var.chart.termination_grace_period_seconds > var.chart.worker.shutdown_timeout_seconds + 15, false)
    error_message = "chart.termination_grace_period_seconds must be a whole number greater than chart.worker.shutdown_timeout_seconds + 15 (drain, then requeue), or the kubelet kills jobs that are still draining."
  }
  validation {
    condition     = var.chart.security_context.uid >= 1 && var.chart.security_context.gid >= 1
    error_message = "chart.security_context.uid and gid must be at least 1: the worker never runs as root."
  }
  validation {
    condition     = alltrue([for n in [var.chart.probes.startup.period_seconds, var.chart.probes.startup.timeout_seconds, var.chart.probes.startup.failure_threshold, var.chart.probes.liveness.period_seconds, var.chart.probes.liveness.timeout_seconds, var.chart.probes.liveness.failure_threshold, var.chart.probes.readiness.period_seconds, var.chart.probes.readiness.timeout_seconds, var.chart.probes.readiness.failure_threshold] : n == floor(n) && n >= 1]) && var.chart.probes.liveness.initial_delay_seconds >= 0
    error_message = "chart.probes periods, timeouts and failure thresholds must be whole numbers, at least 1 (initial_delay_seconds at least 0)."
  }
  validation {
    condition     = alltrue([for c in [var.chart.resources.requests.cpu, var.chart.resources.limits.cpu] : can(regex("^([0-9]+m|[0-9]+(\\.[0-9]+)?)$", c))])
    error_message = "chart.resources cpu must be a Kubernetes CPU quantity such as \"1\", \"0.5\" or \"500m\"."
  }
  validation {
    condition     = alltrue([for m in [var.chart.resources.requests.memory, var.chart.resources.limits.memory] : can(regex("^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$", m))])
    error_message = "chart.resources memory must be a Kubernetes memory quantity such as \"3Gi\" or \"512Mi\"."
  }
  validation {
    condition     = length(setintersection(keys(var.chart.pod_labels), ["app.kubernetes.io/name", "app.kubernetes.io/instance"])) == 0
    error_message = "chart.pod_labels must not set app.kubernetes.io/name or app.kubernetes.io/instance: the chart's selector and the scrape config rely on them."
  }
  validation {
    condition     = alltrue([for t in var.chart.tolerations : contains(["Equal", "Exists"], t.operator) && (t.effect == null || contains(["NoSchedule", "PreferNoSchedule", "NoExecute"], coalesce(t.effect, "-")))])
    error_message = "chart.tolerations[*].operator must be Equal or Exists, and effect NoSchedule, PreferNoSchedule or NoExecute (or unset)."
  }
  validation {
    condition     = can(keys(jsondecode(var.chart.affinity_json)))
    error_message = "chart.affinity_json must be a JSON object, e.g. {\"nodeAffinity\": {...}}."
  }
  validation {
    condition     = alltrue([for t in var.chart.topology_spread : t.max_skew == floor(t.max_skew) && t.max_skew >= 1 && contains(["ScheduleAnyway", "DoNotSchedule"], t.when_unsatisfiable)])
    error_message = "chart.topology_spread[*] needs a whole max_skew of at least 1 and when_unsatisfiable ScheduleAnyway or DoNotSchedule."
  }
  validation {
    condition     = var.chart.priority_class_name == "" || can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.chart.priority_class_name))
    error_message = "chart.priority_class_name must be empty or a PriorityClass name (a lower-case DNS subdomain)."
  }
  validation {
    condition     = startswith(trimspace(var.chart.extra_volumes_json), "[") && try(alltrue([for v in jsondecode(var.chart.extra_volumes_json) : can(v.name)]), false)
    error_message = "chart.extra_volumes_json must be a JSON list of Kubernetes Volume objects, each with a name."
  }
  validation {
    condition     = startswith(trimspace(var.chart.extra_volume_mounts_json), "[") && try(alltrue([for m in jsondecode(var.chart.extra_volume_mounts_json) : can(m.name) && can(m.mountPath)]), false)
    error_message = "chart.extra_volume_mounts_json must be a JSON list of Kubernetes VolumeMount objects, each with name and mountPath."
  }

  # Scaling

  validation {
    condition     = var.chart.replica_count == floor(var.chart.replica_count) && var.chart.replica_count >= 0
    error_message = "chart.replica_count must be a whole number, at least 0."
  }
  validation {
    condition     = var.chart.keda.min_replica_count == floor(var.chart.keda.min_replica_count) && var.chart.keda.min_replica_count >= 0
    error_message = "chart.keda.min_replica_count must be a whole number, at least 0."
  }
  validation {
    condition     = var.chart.keda.max_replica_count == floor(var.chart.keda.max_replica_count) && var.chart.keda.max_replica_count >= 1 && var.chart.keda.max_replica_count >= var.chart.keda.min_replica_count
    error_message = "chart.keda.max_replica_count must be a whole number, at least 1 and at least chart.keda.min_replica_count."
  }
  validation {
    condition     = var.chart.keda.polling_interval >= 1 && var.chart.keda.cooldown_period >= 0
    error_message = "chart.keda.polling_interval must be at least 1 s and chart.keda.cooldown_period at least 0 s."
  }
  validation {
    condition     = var.chart.keda.list_length == null || try(var.chart.keda.list_length >= 1 && var.chart.keda.list_length == floor(var.chart.keda.list_length), false)
    error_message = "chart.keda.list_length must be null (= worker.concurrency) or a whole number, at least 1."
  }
  validation {
    condition     = contains(["sum", "max"], var.chart.keda.combine_triggers)
    error_message = "chart.keda.combine_triggers must be sum or max."
  }
  validation {
    condition     = var.chart.keda.scale_down.stabilization_window_seconds >= 0 && var.chart.keda.scale_down.stabilization_window_seconds <= 3600 && var.chart.keda.scale_down.pods_per_period >= 1 && var.chart.keda.scale_down.period_seconds >= 1 && var.chart.keda.scale_down.period_seconds <= 1800
    error_message = "chart.keda.scale_down needs 0 <= stabilization_window_seconds <= 3600 (HPA limit), pods_per_period >= 1 and 1 <= period_seconds <= 1800 (HPA limit)."
  }
  validation {
    condition     = var.chart.keda.fallback.failure_threshold >= 1 && var.chart.keda.fallback.replicas >= 0 && var.chart.keda.fallback.replicas <= var.chart.keda.max_replica_count && contains(["static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower"], var.chart.keda.fallback.behavior)
    error_message = "chart.keda.fallback needs failure_threshold >= 1, 0 <= replicas <= keda.max_replica_count, and behavior static, currentReplicas, currentReplicasIfHigher or currentReplicasIfLower."
  }

  # Chart features

  validation {
    condition     = var.chart.service_account.name == "" || can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.chart.service_account.name))
    error_message = "chart.service_account.name must be empty or a lower-case DNS subdomain."
  }
  validation {
    condition     = var.chart.service_port == floor(var.chart.service_port) && var.chart.service_port >= 1 && var.chart.service_port <= 65535
    error_message = "chart.service_port must be a whole number from 1 to 65535."
  }
  validation {
    condition     = var.chart.pod_disruption_budget.max_unavailable == floor(var.chart.pod_disruption_budget.max_unavailable) && var.chart.pod_disruption_budget.max_unavailable >= 1
    error_message = "chart.pod_disruption_budget.max_unavailable must be a whole number, at least 1 (0 would block node drains)."
  }
  validation {
    condition     = contains(["AlwaysAllow", "IfHealthyBudget"], var.chart.pod_disruption_budget.unhealthy_pod_eviction_policy)
    error_message = "chart.pod_disruption_budget.unhealthy_pod_eviction_policy must be AlwaysAllow (drains never wait for unready pods) or IfHealthyBudget."
  }
  validation {
    condition     = can(cidrhost(var.chart.network_policy.redis_cidr, 0))
    error_message = "chart.network_policy.redis_cidr must be a CIDR block such as 10.0.0.0/8."
  }
  validation {
    condition     = startswith(trimspace(var.chart.network_policy.extra_egress_json), "[") && try(alltrue([for r in jsondecode(var.chart.network_policy.extra_egress_json) : can(keys(r))]), false)
    error_message = "chart.network_policy.extra_egress_json must be a JSON list of objects (NetworkPolicyEgressRule), e.g. [{\"ports\": [{\"port\": 443}]}]."
  }
  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h)$", var.chart.pod_monitor.interval))
    error_message = "chart.pod_monitor.interval must be a Prometheus duration such as 30s or 1m."
  }
  validation {
    condition     = var.chart.pod_deletion_cost.interval_seconds == floor(var.chart.pod_deletion_cost.interval_seconds) && var.chart.pod_deletion_cost.interval_seconds >= 1 && var.chart.pod_deletion_cost.interval_seconds <= 3600
    error_message = "chart.pod_deletion_cost.interval_seconds must be a whole number from 1 to 3600."
  }
  validation {
    condition     = can(cidrhost(var.chart.pod_deletion_cost.api_server_cidr, 0))
    error_message = "chart.pod_deletion_cost.api_server_cidr must be a CIDR block such as 10.0.0.0/8."
  }
  validation {
    condition     = !var.chart.console.enabled || (var.chart.console.existing_secret != "" && (var.chart.console.token_key != "" || (var.chart.console.username_key != "" && var.chart.console.password_key != "")))
    error_message = "chart.console.enabled needs chart.console.existing_secret and, in it, token_key or both username_key and password_key: the console never runs without credentials."
  }
  validation {
    condition     = var.chart.console.port == floor(var.chart.console.port) && var.chart.console.port >= 1 && var.chart.console.port <= 65535
    error_message = "chart.console.port must be a whole number from 1 to 65535."
  }
}

################################################################################
# Tied to other parts of the deployment
################################################################################

variable "monitoring_namespace" {
  description = "Namespace of Prometheus: the NetworkPolicy lets it in to scrape. The root passes the scrape config's namespace, so the two never disagree."
  type        = string
  default     = "monitoring"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.monitoring_namespace))
    error_message = "monitoring_namespace must be a namespace name (DNS-1123 label)."
  }
}

################################################################################
# Release timing
################################################################################

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

variable "helm_timeout_seconds" {
  description = "Helm's own timeout for install and upgrade. null: computed to cover a rolling update with full drains (at least 900 s; the provider's 300 s default is shorter than one drain)."
  type        = number
  default     = null

  validation {
    condition     = var.helm_timeout_seconds == null || try(var.helm_timeout_seconds >= 300, false)
    error_message = "helm_timeout_seconds must be null (computed) or at least 300."
  }
}
