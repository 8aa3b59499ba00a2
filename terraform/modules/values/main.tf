################################################################################
# Derived settings
################################################################################

locals {
  chart = var.chart

  # Margin after the drain budget for the requeue of unfinished jobs and the HTTP shutdown.
  requeue_margin_seconds = 30
  termination_grace_period_seconds = coalesce(
    local.chart.termination_grace_period_seconds,
    local.chart.worker.shutdown_timeout_seconds + local.requeue_margin_seconds,
  )

  # Helm must wait for a whole rolling update. In the worst case every surge batch waits for the
  # pods it replaces to drain (the grace period) plus a pod start. Never below 900 s.
  pod_start_allowance_seconds = 120
  rollout_replicas            = local.chart.keda.enabled ? local.chart.keda.max_replica_count : local.chart.replica_count
  rollout_batch               = max(1, ceil(local.rollout_replicas * var.rollout_max_surge_percent / 100))
  rollout_batches             = max(1, ceil(local.rollout_replicas / local.rollout_batch))
  rollout_timeout_seconds = max(
    900,
    local.rollout_batches * (local.termination_grace_period_seconds + local.pod_start_allowance_seconds),
  )
  helm_timeout_seconds = coalesce(var.helm_timeout_seconds, local.rollout_timeout_seconds)
  # The helm provider (>= 3.1) stops an operation after its own `timeouts` (20 min by default),
  # whatever Helm's timeout says. With atomic, a failed upgrade waits out Helm's timeout and then
  # rolls back, which may wait as long again; 5 min more for the provider's own calls.
  operation_timeout_seconds = 2 * local.helm_timeout_seconds + 300

  app_name = local.chart.name_override != "" ? local.chart.name_override : "workflow-worker"

  tolerations = [
    for t in local.chart.tolerations : { for k, v in {
      key               = t.key
      operator          = t.operator
      value             = t.value
      effect            = t.effect
      tolerationSeconds = t.toleration_seconds
    } : k => v if v != null }
  ]

  # On OpenShift the restricted SCC assigns uid and gid from the namespace's range: a null value
  # removes the chart's default key (Helm drops null values).
  uid = local.chart.security_context.platform_assigned_ids ? null : local.chart.security_context.uid
  gid = local.chart.security_context.platform_assigned_ids ? null : local.chart.security_context.gid
}

################################################################################
# Chart values (helm/workflow-worker/values.yaml, docs/contract.md)
################################################################################

locals {
  values = {
    image = {
      repository = local.chart.image.repository
      tag        = local.chart.image.tag
      digest     = local.chart.image.digest
      pullPolicy = local.chart.image.pull_policy
    }
    imagePullSecrets = [for s in local.chart.image_pull_secrets : { name = s }]
    nameOverride     = local.chart.name_override
    fullnameOverride = local.chart.fullname_override
    replicaCount     = local.chart.replica_count
    worker = {
      queue                  = local.chart.worker.queue
      concurrency            = local.chart.worker.concurrency
      httpPort               = local.chart.worker.http_port
      shutdownTimeoutSeconds = local.chart.worker.shutdown_timeout_seconds
      leaseSeconds           = local.chart.worker.lease_seconds
      jobTimeoutSeconds      = local.chart.worker.job_timeout_seconds
      maxAttempts            = local.chart.worker.max_attempts
      resultTtlSeconds       = local.chart.worker.result_ttl_seconds
      workflows              = local.chart.worker.workflows
      logFormat              = local.chart.worker.log_format
      logLevel               = local.chart.worker.log_level
      benchmark = {
        enabled    = local.chart.worker.benchmark.enabled
        minSeconds = local.chart.worker.benchmark.min_seconds
        maxSeconds = local.chart.worker.benchmark.max_seconds
      }
      extraEnv = local.chart.worker.extra_env
    }
    env = [
      for name in sort(keys(local.chart.secret_env)) : {
        name      = name
        valueFrom = { secretKeyRef = { name = local.chart.secret_env[name].secret, key = local.chart.secret_env[name].key } }
      }
    ]
    envFrom = [for s in local.chart.env_from_secrets : { secretRef = { name = s } }]
    redis = {
      mode                      = local.chart.redis.mode
      host                      = local.chart.redis.host
      port                      = local.chart.redis.port
      database                  = local.chart.redis.database
      username                  = local.chart.redis.username
      existingSecret            = local.chart.redis.existing_secret
      existingSecretPasswordKey = local.chart.redis.existing_secret_password_key
      tls = {
        enabled  = local.chart.redis.tls.enabled
        caSecret = local.chart.redis.tls.ca_secret
        caKey    = local.chart.redis.tls.ca_key
      }
      sentinel = {
        masterName         = local.chart.redis.sentinel.master_name
        port               = local.chart.redis.sentinel.port
        passwordFromSecret = local.chart.redis.sentinel.password_from_secret
        username           = local.chart.redis.sentinel.username
      }
    }
    terminationGracePeriodSeconds = local.termination_grace_period_seconds
    podSecurityContext = {
      runAsNonRoot   = true
      runAsUser      = local.uid
      runAsGroup     = local.gid
      fsGroup        = local.gid
      seccompProfile = { type = "RuntimeDefault" }
    }
    containerSecurityContext = {
      runAsNonRoot             = true
      runAsUser                = local.uid
      runAsGroup               = local.gid
      privileged               = false
      allowPrivilegeEscalation = false
      readOnlyRootFilesystem   = true
      capabilities             = { drop = ["ALL"] }
      seccompProfile           = { type = "RuntimeDefault" }
    }
    probes = {
      startup = {
        enabled          = local.chart.probes.startup.enabled
        periodSeconds    = local.chart.probes.startup.period_seconds
        timeoutSeconds   = local.chart.probes.startup.timeout_seconds
        failureThreshold = local.chart.probes.startup.failure_threshold
      }
      liveness = {
        initialDelaySeconds = local.chart.probes.liveness.initial_delay_seconds
        periodSeconds       = local.chart.probes.liveness.period_seconds
        timeoutSeconds      = local.chart.probes.liveness.timeout_seconds
        failureThreshold    = local.chart.probes.liveness.failure_threshold
      }
      readiness = {
        periodSeconds    = local.chart.probes.readiness.period_seconds
        timeoutSeconds   = local.chart.probes.readiness.timeout_seconds
        failureThreshold = local.chart.probes.readiness.failure_threshold
      }
    }
    resources = {
      requests = { cpu = local.chart.resources.requests.cpu, memory = local.chart.resources.requests.memory }
      limits   = { cpu = local.chart.resources.limits.cpu, memory = local.chart.resources.limits.memory }
    }
    keda = {
      enabled         = local.chart.keda.enabled
      assumeInstalled = local.chart.keda.assume_installed
      minReplicaCount = local.chart.keda.min_replica_count
      maxReplicaCount = local.chart.keda.max_replica_count
      pollingInterval = local.chart.keda.polling_interval
      cooldownPeriod  = local.chart.keda.cooldown_period
      listLength      = coalesce(local.chart.keda.list_length, local.chart.worker.concurrency)
      inflightTrigger = local.chart.keda.inflight_trigger
      combineTriggers = local.chart.keda.combine_triggers
      scaleDown = {
        stabilizationWindowSeconds = local.chart.keda.scale_down.stabilization_window_seconds
        podsPerPeriod              = local.chart.keda.scale_down.pods_per_period
        periodSeconds              = local.chart.keda.scale_down.period_seconds
      }
      fallback = {
        enabled          = local.chart.keda.fallback.enabled
        failureThreshold = local.chart.keda.fallback.failure_threshold
        replicas         = local.chart.keda.fallback.replicas
        behavior         = local.chart.keda.fallback.behavior
      }
    }
    serviceAccount = {
      create         = local.chart.service_account.create
      name           = local.chart.service_account.name
      annotations    = local.chart.service_account.annotations
      automountToken = local.chart.service_account.automount_token
    }
    service = { port = local.chart.service_port }
    podDisruptionBudget = {
      enabled                    = local.chart.pod_disruption_budget.enabled
      maxUnavailable             = local.chart.pod_disruption_budget.max_unavailable
      unhealthyPodEvictionPolicy = local.chart.pod_disruption_budget.unhealthy_pod_eviction_policy
    }
    networkPolicy = {
      enabled             = local.chart.network_policy.enabled
      monitoringNamespace = var.monitoring_namespace
      redisCidr           = local.chart.network_policy.redis_cidr
      extraEgress         = jsondecode(local.chart.network_policy.extra_egress_json)
    }
    scrapeAnnotations = local.chart.scrape_annotations
    podMonitor = {
      enabled  = local.chart.pod_monitor.enabled
      labels   = local.chart.pod_monitor.labels
      interval = local.chart.pod_monitor.interval
    }
    prometheusRule = {
      enabled = local.chart.prometheus_rule.enabled
      labels  = local.chart.prometheus_rule.labels
    }
    podDeletionCost = {
      enabled         = local.chart.pod_deletion_cost.enabled
      intervalSeconds = local.chart.pod_deletion_cost.interval_seconds
      apiServerCidr   = local.chart.pod_deletion_cost.api_server_cidr
    }
    console = {
      enabled        = local.chart.console.enabled
      port           = local.chart.console.port
      existingSecret = local.chart.console.existing_secret
      tokenKey       = local.chart.console.token_key
      usernameKey    = local.chart.console.username_key
      passwordKey    = local.chart.console.password_key
      readOnly       = local.chart.console.read_only
      redact         = local.chart.console.redact
      secureCookies  = local.chart.console.secure_cookies
      resources      = local.chart.console.resources
    }
    podAnnotations = local.chart.pod_annotations
    podLabels      = local.chart.pod_labels
    nodeSelector   = local.chart.node_selector
    tolerations    = local.tolerations
    affinity       = jsondecode(local.chart.affinity_json)
    topologySpreadConstraints = [
      for t in local.chart.topology_spread : {
        maxSkew           = t.max_skew
        topologyKey       = t.topology_key
        whenUnsatisfiable = t.when_unsatisfiable
      }
    ]
    priorityClassName = local.chart.priority_class_name
    extraVolumes      = jsondecode(local.chart.extra_volumes_json)
    extraVolumeMounts = jsondecode(local.chart.extra_volume_mounts_json)
  }
}
