################################################################################
# Derived settings
################################################################################

locals {
  # Margin after the drain budget for the requeue of unfinished jobs and the HTTP shutdown.
  requeue_margin_seconds = 30
  termination_grace_period_seconds = coalesce(
    var.termination_grace_period_seconds,
    var.worker.shutdown_timeout_seconds + local.requeue_margin_seconds,
  )

  # Helm must wait for a whole rolling update. In the worst case every surge batch waits for the
  # pods it replaces to drain (the grace period) plus a pod start. Never below 900 s.
  pod_start_allowance_seconds = 120
  rollout_replicas            = var.keda.enabled ? var.keda.max_replica_count : var.replica_count
  rollout_batch               = max(1, ceil(local.rollout_replicas * var.rollout_max_surge_percent / 100))
  rollout_batches             = max(1, ceil(local.rollout_replicas / local.rollout_batch))
  rollout_timeout_seconds = max(
    900,
    local.rollout_batches * (local.termination_grace_period_seconds + local.pod_start_allowance_seconds),
  )

  app_name = var.name_override != "" ? var.name_override : "workflow-worker"

  tolerations = [
    for t in var.tolerations : { for k, v in {
      key               = t.key
      operator          = t.operator
      value             = t.value
      effect            = t.effect
      tolerationSeconds = t.toleration_seconds
    } : k => v if v != null }
  ]
}

################################################################################
# Chart values (helm/workflow-worker/values.yaml, docs/contract.md)
################################################################################

locals {
  values = {
    image = {
      repository = var.image.repository
      tag        = var.image.tag
      pullPolicy = var.image.pull_policy
    }
    imagePullSecrets = [for s in var.image_pull_secrets : { name = s }]
    nameOverride     = var.name_override
    fullnameOverride = var.fullname_override
    replicaCount     = var.replica_count
    worker = {
      queue                  = var.worker.queue
      concurrency            = var.worker.concurrency
      httpPort               = var.worker.http_port
      shutdownTimeoutSeconds = var.worker.shutdown_timeout_seconds
      leaseSeconds           = var.worker.lease_seconds
      jobTimeoutSeconds      = var.worker.job_timeout_seconds
      maxAttempts            = var.worker.max_attempts
      resultTtlSeconds       = var.worker.result_ttl_seconds
      workflows              = var.worker.workflows
      logFormat              = var.worker.log_format
      logLevel               = var.worker.log_level
      benchmark = {
        enabled    = var.worker.benchmark.enabled
        minSeconds = var.worker.benchmark.min_seconds
        maxSeconds = var.worker.benchmark.max_seconds
      }
      extraEnv = var.worker.extra_env
    }
    redis = {
      mode                      = var.redis.mode
      host                      = var.redis.host
      port                      = var.redis.port
      database                  = var.redis.database
      username                  = var.redis.username
      existingSecret            = var.redis.existing_secret
      existingSecretPasswordKey = var.redis.existing_secret_password_key
      tls = {
        enabled  = var.redis.tls.enabled
        caSecret = var.redis.tls.ca_secret
        caKey    = var.redis.tls.ca_key
      }
      sentinel = {
        masterName         = var.redis.sentinel.master_name
        port               = var.redis.sentinel.port
        passwordFromSecret = var.redis.sentinel.password_from_secret
      }
    }
    terminationGracePeriodSeconds = local.termination_grace_period_seconds
    resources = {
      requests = { cpu = var.resources.requests.cpu, memory = var.resources.requests.memory }
      limits   = { cpu = var.resources.limits.cpu, memory = var.resources.limits.memory }
    }
    keda = {
      enabled         = var.keda.enabled
      assumeInstalled = var.keda.assume_installed
      minReplicaCount = var.keda.min_replica_count
      maxReplicaCount = var.keda.max_replica_count
      pollingInterval = var.keda.polling_interval
      cooldownPeriod  = var.keda.cooldown_period
      listLength      = coalesce(var.keda.list_length, var.worker.concurrency)
      inflightTrigger = var.keda.inflight_trigger
      combineTriggers = var.keda.combine_triggers
      scaleDown = {
        stabilizationWindowSeconds = var.keda.scale_down.stabilization_window_seconds
        podsPerPeriod              = var.keda.scale_down.pods_per_period
        periodSeconds              = var.keda.scale_down.period_seconds
      }
    }
    serviceAccount = {
      create         = var.service_account.create
      name           = var.service_account.name
      annotations    = var.service_account.annotations
      automountToken = var.service_account.automount_token
    }
    service = { port = var.service_port }
    podDisruptionBudget = {
      enabled        = var.pod_disruption_budget.enabled
      maxUnavailable = var.pod_disruption_budget.max_unavailable
    }
    networkPolicy = {
      enabled             = var.network_policy.enabled
      monitoringNamespace = var.network_policy.monitoring_namespace
      redisCidr           = var.network_policy.redis_cidr
      extraEgress         = jsondecode(var.network_policy.extra_egress_json)
    }
    podMonitor = {
      enabled  = var.pod_monitor.enabled
      labels   = var.pod_monitor.labels
      interval = var.pod_monitor.interval
    }
    prometheusRule = {
      enabled = var.prometheus_rule.enabled
      labels  = var.prometheus_rule.labels
    }
    podDeletionCost = {
      enabled         = var.pod_deletion_cost.enabled
      intervalSeconds = var.pod_deletion_cost.interval_seconds
      apiServerCidr   = var.pod_deletion_cost.api_server_cidr
    }
    podAnnotations = var.pod_annotations
    podLabels      = var.pod_labels
    nodeSelector   = var.node_selector
    tolerations    = local.tolerations
    affinity       = jsondecode(var.affinity_json)
  }
}
