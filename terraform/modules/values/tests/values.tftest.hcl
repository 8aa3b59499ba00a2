# Unit tests of the values module: rendering (apply: the module has no resources) and one
# negative run per validation rule. Every negative run is `base` (a valid chart) with one change,
# so the only rule it can break is the one named by the run.

variables {
  base = {
    image = { repository = "ghcr.io/example/workflow-worker", tag = "0.1.0" }
    redis = { host = "redis-master", existing_secret = "redis-auth" }
  }
  chart = {
    image = { repository = "ghcr.io/example/workflow-worker", tag = "0.1.0" }
    redis = { host = "redis-master", existing_secret = "redis-auth" }
  }
}

run "defaults_match_the_contract" {
  command = apply

  # The defaults are the chart defaults of docs/contract.md.
  assert {
    condition     = yamldecode(output.yaml).image == { repository = "ghcr.io/example/workflow-worker", tag = "0.1.0", digest = "", pullPolicy = "IfNotPresent" }
    error_message = "image is not rendered as {repository, tag, digest, pullPolicy}"
  }
  assert {
    condition     = yamldecode(output.yaml).worker.concurrency == 50 && yamldecode(output.yaml).worker.queue == "workflow:queue"
    error_message = "worker defaults differ from the contract"
  }
  assert {
    condition     = yamldecode(output.yaml).worker.shutdownTimeoutSeconds == 300 && yamldecode(output.yaml).terminationGracePeriodSeconds == 330
    error_message = "grace period is not shutdown timeout + 30 s"
  }
  assert {
    condition     = yamldecode(output.yaml).resources == { requests = { cpu = "1", memory = "3Gi" }, limits = { cpu = "1", memory = "3Gi" } }
    error_message = "resources are not 1 CPU / 3Gi"
  }
  # list_length null renders the per-pod concurrency, as the chart would.
  assert {
    condition     = yamldecode(output.yaml).keda.listLength == 50 && yamldecode(output.yaml).keda.enabled && yamldecode(output.yaml).keda.minReplicaCount == 1
    error_message = "keda.listLength does not default to worker.concurrency"
  }
  assert {
    condition     = yamldecode(output.yaml).keda.fallback == { enabled = false, failureThreshold = 3, replicas = 2, behavior = "currentReplicasIfHigher" }
    error_message = "keda.fallback defaults differ from the chart"
  }
  assert {
    condition     = yamldecode(output.yaml).redis.existingSecret == "redis-auth" && yamldecode(output.yaml).redis.existingSecretPasswordKey == "redis-password"
    error_message = "redis Secret reference not rendered"
  }
  assert {
    condition     = yamldecode(output.yaml).redis.sentinel == { masterName = "mymaster", port = 26379, passwordFromSecret = false, username = "" }
    error_message = "redis.sentinel defaults differ from the contract"
  }
  assert {
    condition     = yamldecode(output.yaml).podSecurityContext == { runAsNonRoot = true, runAsUser = 10001, runAsGroup = 10001, fsGroup = 10001, seccompProfile = { type = "RuntimeDefault" } }
    error_message = "podSecurityContext defaults differ from the chart"
  }
  assert {
    condition     = yamldecode(output.yaml).podDisruptionBudget.unhealthyPodEvictionPolicy == "AlwaysAllow" && yamldecode(output.yaml).scrapeAnnotations
    error_message = "PDB eviction policy / scrape annotations defaults differ from the chart"
  }
  assert {
    condition     = yamldecode(output.yaml).networkPolicy.monitoringNamespace == "monitoring"
    error_message = "the NetworkPolicy does not default to the monitoring namespace"
  }
  assert {
    condition     = yamldecode(output.yaml).affinity == {} && yamldecode(output.yaml).tolerations == [] && yamldecode(output.yaml).imagePullSecrets == [] && yamldecode(output.yaml).env == [] && yamldecode(output.yaml).envFrom == [] && yamldecode(output.yaml).extraVolumes == []
    error_message = "empty collections are not rendered empty"
  }
  assert {
    condition     = jsonencode(yamldecode(output.yaml)) == jsonencode(output.values)
    error_message = "the YAML output does not round-trip to the values object"
  }
  assert {
    condition     = output.app_name == "workflow-worker"
    error_message = "app_name should default to the chart name"
  }
  # 20 replicas at 25 % surge = 4 batches of (330 s grace + 120 s start).
  assert {
    condition     = output.rollout_timeout_seconds == 1800 && output.helm_timeout_seconds == 1800
    error_message = "rollout timeout is not 4 x (330 + 120)"
  }
  # The provider's own timeouts (20 min by default in helm provider 3.1) must outlast Helm's wait
  # and an atomic rollback: 2 x 1800 + 300.
  assert {
    condition     = output.operation_timeout_seconds == 3900
    error_message = "the provider operation timeout does not cover Helm's timeout plus a rollback"
  }
}

run "production_sized_fleet_outlasts_the_providers_default" {
  command = plan
  variables {
    chart = merge(var.base, { keda = { min_replica_count = 2, max_replica_count = 200 } })
  }
  # 200 pods at 25 % surge: 4 batches of 450 s = 30 min, above the provider's 20 min default.
  assert {
    condition     = output.helm_timeout_seconds == 1800 && output.operation_timeout_seconds > 20 * 60
    error_message = "a 200-pod rollout must get more than the provider's 20 minute default"
  }
}

run "explicit_helm_timeout_drives_the_operation_timeout" {
  command = plan
  variables {
    helm_timeout_seconds = 2400
  }
  assert {
    condition     = output.helm_timeout_seconds == 2400 && output.operation_timeout_seconds == 5100
    error_message = "an explicit helm timeout must be used and doubled (+300 s) for the provider"
  }
}

run "no_keda_uses_replica_count_for_the_timeout" {
  command = plan
  variables {
    chart = merge(var.base, { keda = { enabled = false }, replica_count = 3 })
  }
  assert {
    condition     = output.values.keda.enabled == false && output.values.replicaCount == 3
    error_message = "keda.enabled / replicaCount not rendered"
  }
  # 3 replicas at 25 % surge are replaced one at a time: 3 x (330 + 120).
  assert {
    condition     = output.rollout_timeout_seconds == 1350
    error_message = "rollout timeout does not follow replica_count when KEDA is off"
  }
}

run "small_rollout_gets_the_900s_floor" {
  command = plan
  variables {
    chart = merge(var.base, { keda = { enabled = false }, replica_count = 1 })
  }
  assert {
    condition     = output.rollout_timeout_seconds == 900
    error_message = "a small rollout must still get the 900 s floor"
  }
}

run "ipv6_host_and_extra_egress_are_accepted" {
  command = plan
  variables {
    chart = merge(var.base, {
      redis          = { host = "[fd00::10]", mode = "cluster" }
      keda           = { assume_installed = true }
      network_policy = { enabled = true, extra_egress_json = "[{\"ports\": [{\"port\": 443, \"protocol\": \"TCP\"}]}, {\"to\": [{\"ipBlock\": {\"cidr\": \"10.0.0.0/8\"}}]}]" }
    })
    monitoring_namespace = "observability"
  }
  assert {
    condition     = output.values.redis.host == "[fd00::10]" && output.values.keda.assumeInstalled
    error_message = "IPv6 host / assumeInstalled not rendered"
  }
  assert {
    condition     = length(output.values.networkPolicy.extraEgress) == 2 && output.values.networkPolicy.extraEgress[0].ports[0].port == 443
    error_message = "extra_egress_json not decoded into networkPolicy.extraEgress"
  }
  # The NetworkPolicy admits the namespace the scrape config lives in, not a second setting.
  assert {
    condition     = output.values.networkPolicy.monitoringNamespace == "observability"
    error_message = "monitoring_namespace does not reach networkPolicy.monitoringNamespace"
  }
}

run "explicit_settings_are_rendered_in_chart_keys" {
  command = plan
  variables {
    chart = {
      image                            = { repository = "ghcr.io/example/workflow-worker", tag = "0.1.0" }
      name_override                    = "billing-worker"
      image_pull_secrets               = ["ghcr-pull"]
      termination_grace_period_seconds = 700
      worker = {
        concurrency              = 20
        shutdown_timeout_seconds = 600
        extra_env                = { FEATURE_X = "on" }
        benchmark                = { enabled = true, max_seconds = 5 }
      }
      redis = {
        mode            = "sentinel"
        host            = "redis-sentinel.redis"
        port            = 26379
        username        = "worker"
        existing_secret = "redis-auth"
        tls             = { enabled = true, ca_secret = "redis-ca" }
        sentinel        = { master_name = "queue", password_from_secret = true, username = "sentinel-reader" }
      }
      keda        = { list_length = 10, max_replica_count = 40 }
      tolerations = [{ key = "dedicated", value = "workers", effect = "NoSchedule" }]
      affinity_json = jsonencode({ nodeAffinity = { requiredDuringSchedulingIgnoredDuringExecution = {
        nodeSelectorTerms = [{ matchExpressions = [{ key = "pool", operator = "In", values = ["workers"] }] }]
      } } })
    }
  }
  assert {
    condition     = output.values.nameOverride == "billing-worker" && output.app_name == "billing-worker"
    error_message = "name_override not rendered or not reflected in app_name"
  }
  assert {
    condition     = output.values.imagePullSecrets == [{ name = "ghcr-pull" }]
    error_message = "image_pull_secrets not rendered as [{name}]"
  }
  assert {
    condition     = output.values.terminationGracePeriodSeconds == 700 && output.values.worker.shutdownTimeoutSeconds == 600
    error_message = "explicit grace period not kept"
  }
  assert {
    condition     = jsonencode(output.values.worker.extraEnv) == jsonencode({ FEATURE_X = "on" }) && jsonencode(output.values.worker.benchmark) == jsonencode({ enabled = true, maxSeconds = 5, minSeconds = 2 })
    error_message = "worker.extraEnv / benchmark not rendered"
  }
  assert {
    condition     = output.values.redis.mode == "sentinel" && output.values.redis.sentinel.masterName == "queue" && output.values.redis.tls == { enabled = true, caSecret = "redis-ca", caKey = "ca.crt" }
    error_message = "redis sentinel / tls settings not rendered"
  }
  assert {
    condition     = output.values.redis.sentinel.passwordFromSecret && output.values.redis.sentinel.username == "sentinel-reader"
    error_message = "the Sentinel password switch / user not rendered"
  }
  assert {
    condition     = output.values.keda.listLength == 10 && output.values.keda.maxReplicaCount == 40
    error_message = "explicit keda settings not rendered"
  }
  # Unset toleration attributes are dropped rather than rendered as null.
  assert {
    condition     = output.values.tolerations == [{ key = "dedicated", operator = "Equal", value = "workers", effect = "NoSchedule" }]
    error_message = "tolerations not rendered in Kubernetes form"
  }
  assert {
    condition     = output.values.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key == "pool"
    error_message = "affinity_json not decoded into values.affinity"
  }
  # 40 replicas at 25 % surge = 4 batches of (700 s + 120 s).
  assert {
    condition     = output.rollout_timeout_seconds == 3280
    error_message = "rollout timeout does not follow the grace period"
  }
}

run "platform_settings_are_rendered_in_chart_keys" {
  command = plan
  variables {
    chart = merge(var.base, {
      image                    = { repository = "ghcr.io/example/workflow-worker", tag = "0.1.0", digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
      secret_env               = { API_TOKEN = { secret = "my-app", key = "token" } }
      env_from_secrets         = ["my-app-secrets"]
      security_context         = { platform_assigned_ids = true }
      probes                   = { startup = { enabled = false }, liveness = { period_seconds = 20 } }
      keda                     = { fallback = { enabled = true, replicas = 4, behavior = "static" } }
      topology_spread          = [{ topology_key = "topology.kubernetes.io/zone" }]
      priority_class_name      = "workers-high"
      extra_volumes_json       = "[{\"name\": \"certs\", \"secret\": {\"secretName\": \"client-cert\"}}]"
      extra_volume_mounts_json = "[{\"name\": \"certs\", \"mountPath\": \"/etc/certs\"}]"
      pod_monitor              = { enabled = true }
      scrape_annotations       = false
    })
  }
  assert {
    condition     = output.values.image.digest == "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    error_message = "image.digest not rendered"
  }
  assert {
    condition     = jsonencode(output.values.env) == jsonencode([{ name = "API_TOKEN", valueFrom = { secretKeyRef = { name = "my-app", key = "token" } } }]) && jsonencode(output.values.envFrom) == jsonencode([{ secretRef = { name = "my-app-secrets" } }])
    error_message = "secret_env / env_from_secrets not rendered as env / envFrom"
  }
  # null removes the chart's uid and gid (Helm drops null values), as OpenShift needs.
  assert {
    condition     = output.values.podSecurityContext.runAsUser == null && output.values.podSecurityContext.fsGroup == null && output.values.containerSecurityContext.runAsGroup == null && output.values.containerSecurityContext.runAsNonRoot
    error_message = "platform_assigned_ids does not null the uid/gid keys"
  }
  assert {
    condition     = output.values.probes.startup.enabled == false && output.values.probes.liveness.periodSeconds == 20 && output.values.probes.liveness.initialDelaySeconds == 5
    error_message = "probe settings not rendered"
  }
  assert {
    condition     = output.values.keda.fallback == { enabled = true, failureThreshold = 3, replicas = 4, behavior = "static" }
    error_message = "keda.fallback not rendered"
  }
  assert {
    condition     = output.values.topologySpreadConstraints == [{ maxSkew = 1, topologyKey = "topology.kubernetes.io/zone", whenUnsatisfiable = "ScheduleAnyway" }]
    error_message = "topology_spread not rendered as topologySpreadConstraints"
  }
  assert {
    condition     = output.values.priorityClassName == "workers-high" && output.values.extraVolumes[0].secret.secretName == "client-cert" && output.values.extraVolumeMounts[0].mountPath == "/etc/certs"
    error_message = "priority class / extra volumes not rendered"
  }
  assert {
    condition     = output.values.podMonitor.enabled && output.values.scrapeAnnotations == false
    error_message = "pod_monitor / scrape_annotations not rendered"
  }
}

run "pod_deletion_cost_is_rendered_in_chart_keys" {
  command = plan
  variables {
    chart = merge(var.base, { pod_deletion_cost = { enabled = true, interval_seconds = 45, api_server_cidr = "172.20.0.0/16" } })
  }
  # The chart reads podDeletionCost.{enabled,intervalSeconds,apiServerCidr}.
  assert {
    condition     = output.values.podDeletionCost == { enabled = true, intervalSeconds = 45, apiServerCidr = "172.20.0.0/16" }
    error_message = "pod_deletion_cost not rendered as podDeletionCost"
  }
}

run "console_is_rendered_in_chart_keys" {
  command = plan
  variables {
    chart = merge(var.base, { console = { enabled = true, existing_secret = "wf-console", read_only = true } })
  }
  # The chart reads console.{enabled,port,existingSecret,tokenKey,...,resources}.
  assert {
    condition     = output.values.console.enabled && output.values.console.existingSecret == "wf-console" && output.values.console.readOnly && output.values.console.tokenKey == "token" && output.values.console.port == 8090
    error_message = "console not rendered in chart keys"
  }
  assert {
    condition     = output.values.console.resources == { requests = { cpu = "50m", memory = "128Mi" }, limits = { cpu = "500m", memory = "256Mi" } }
    error_message = "console resources do not default to the chart's"
  }
}

################################################################################
# One negative run per validation rule
################################################################################

run "rejects_latest_tag" {
  command = plan
  variables { chart = merge(var.base, { image = { repository = "ghcr.io/example/workflow-worker", tag = "latest" } }) }
  expect_failures = [var.chart]
}

run "rejects_empty_tag" {
  command = plan
  variables { chart = merge(var.base, { image = { repository = "ghcr.io/example/workflow-worker", tag = "" } }) }
  expect_failures = [var.chart]
}

run "rejects_repository_with_digest" {
  command = plan
  variables { chart = merge(var.base, { image = { repository = "ghcr.io/example/workflow-worker@sha256", tag = "0.1.0" } }) }
  expect_failures = [var.chart]
}

run "rejects_unknown_pull_policy" {
  command = plan
  variables { chart = merge(var.base, { image = { repository = "ghcr.io/example/workflow-worker", tag = "0.1.0", pull_policy = "Sometimes" } }) }
  expect_failures = [var.chart]
}

run "rejects_bad_pull_secret_name" {
  command = plan
  variables { chart = merge(var.base, { image_pull_secrets = ["Not_A_Name"] }) }
  expect_failures = [var.chart]
}

run "rejects_bad_name_override" {
  command = plan
  variables { chart = merge(var.base, { name_override = "Worker" }) }
  expect_failures = [var.chart]
}

run "rejects_bad_fullname_override" {
  command = plan
  variables { chart = merge(var.base, { fullname_override = "-worker" }) }
  expect_failures = [var.chart]
}

run "rejects_queue_with_whitespace" {
  command = plan
  variables { chart = merge(var.base, { worker = { queue = "my queue" } }) }
  expect_failures = [var.chart]
}

run "rejects_zero_concurrency" {
  command = plan
  variables { chart = merge(var.base, { worker = { concurrency = 0 } }) }
  expect_failures = [var.chart]
}

run "rejects_fractional_concurrency" {
  command = plan
  variables { chart = merge(var.base, { worker = { concurrency = 2.5 } }) }
  expect_failures = [var.chart]
}

run "rejects_privileged_http_port" {
  command = plan
  variables { chart = merge(var.base, { worker = { http_port = 80 } }) }
  expect_failures = [var.chart]
}

run "rejects_zero_shutdown_timeout" {
  command = plan
  variables { chart = merge(var.base, { worker = { shutdown_timeout_seconds = 0 } }) }
  expect_failures = [var.chart]
}

run "rejects_short_lease" {
  command = plan
  variables { chart = merge(var.base, { worker = { lease_seconds = 1 } }) }
  expect_failures = [var.chart]
}

run "rejects_zero_job_timeout" {
  command = plan
  variables { chart = merge(var.base, { worker = { job_timeout_seconds = 0 } }) }
  expect_failures = [var.chart]
}

run "rejects_zero_attempts" {
  command = plan
  variables { chart = merge(var.base, { worker = { max_attempts = 0 } }) }
  expect_failures = [var.chart]
}

run "rejects_short_result_ttl" {
  command = plan
  variables { chart = merge(var.base, { worker = { result_ttl_seconds = 10 } }) }
  expect_failures = [var.chart]
}

run "rejects_bad_workflows_reference" {
  command = plan
  variables { chart = merge(var.base, { worker = { workflows = "workflow_worker.builtin" } }) }
  expect_failures = [var.chart]
}

run "rejects_unknown_log_format" {
  command = plan
  variables { chart = merge(var.base, { worker = { log_format = "xml" } }) }
  expect_failures = [var.chart]
}

run "rejects_unknown_log_level" {
  command = plan
  variables { chart = merge(var.base, { worker = { log_level = "info" } }) }
  expect_failures = [var.chart]
}

run "rejects_inverted_benchmark_range" {
  command = plan
  variables { chart = merge(var.base, { worker = { benchmark = { min_seconds = 10, max_seconds = 5 } } }) }
  expect_failures = [var.chart]
}

run "rejects_bad_extra_env_name" {
  command = plan
  variables { chart = merge(var.base, { worker = { extra_env = { "my-var" = "x" } } }) }
  expect_failures = [var.chart]
}

run "rejects_secret_in_extra_env" {
  command = plan
  variables { chart = merge(var.base, { worker = { extra_env = { REDIS_PASSWORD = "hunter2" } } }) }
  expect_failures = [var.chart]
}

run "rejects_unknown_redis_mode" {
  command = plan
  variables { chart = merge(var.base, { redis = { host = "redis", mode = "replicated" } }) }
  expect_failures = [var.chart]
}

run "rejects_redis_url_as_host" {
  command = plan
  variables { chart = merge(var.base, { redis = { host = "redis://redis:6379/0" } }) }
  expect_failures = [var.chart]
}

run "rejects_redis_port_out_of_range" {
  command = plan
  variables { chart = merge(var.base, { redis = { host = "redis", port = 70000 } }) }
  expect_failures = [var.chart]
}

run "rejects_redis_database_out_of_range" {
  command = plan
  variables { chart = merge(var.base, { redis = { host = "redis", database = 16 } }) }
  expect_failures = [var.chart]
}

run "rejects_nonzero_database_in_cluster_mode" {
  command = plan
  variables { chart = merge(var.base, { redis = { host = "redis", mode = "cluster", database = 1 } }) }
  expect_failures = [var.chart]
}

run "rejects_password_as_secret_name" {
  command = plan
  variables { chart = merge(var.base, { redis = { host = "redis", existing_secret = "S3cr3t!Pass" } }) }
  expect_failures = [var.chart]
}

run "rejects_bad_secret_key" {
  command = plan
  variables { chart = merge(var.base, { redis = { host = "redis", existing_secret_password_key = "pass word" } }) }
  expect_failures = [var.chart]
}

run "rejects_ca_secret_without_tls" {
  command = plan
  variables { chart = merge(var.base, { redis = { host = "redis", tls = { ca_secret = "redis-ca" } } }) }
  expect_failures = [var.chart]
}

run "rejects_sentinel_port_out_of_range" {
  command = plan
  variables { chart = merge(var.base, { redis = { host = "redis", sentinel = { port = 0 } } }) }
  expect_failures = [var.chart]
}

run "rejects_sentinel_password_without_secret" {
  command = plan
  variables { chart = merge(var.base, { redis = { host = "redis", sentinel = { password_from_secret = true } } }) }
  expect_failures = [var.chart]
}

run "rejects_empty_sentinel_master" {
  command = plan
  variables { chart = merge(var.base, { redis = { host = "redis", sentinel = { master_name = "" } } }) }
  expect_failures = [var.chart]
}

run "rejects_grace_period_without_requeue_margin" {
  command = plan
  variables { chart = merge(var.base, { termination_grace_period_seconds = 315 }) }
  expect_failures = [var.chart]
}

run "rejects_bad_cpu_quantity" {
  command = plan
  variables { chart = merge(var.base, { resources = { requests = { cpu = "one" } } }) }
  expect_failures = [var.chart]
}

run "rejects_bad_memory_quantity" {
  command = plan
  variables { chart = merge(var.base, { resources = { limits = { memory = "3GB" } } }) }
  expect_failures = [var.chart]
}

run "rejects_selector_label_override" {
  command = plan
  variables { chart = merge(var.base, { pod_labels = { "app.kubernetes.io/name" = "other" } }) }
  expect_failures = [var.chart]
}

run "rejects_unknown_toleration_operator" {
  command = plan
  variables { chart = merge(var.base, { tolerations = [{ key = "a", operator = "In" }] }) }
  expect_failures = [var.chart]
}

run "rejects_unknown_toleration_effect" {
  command = plan
  variables { chart = merge(var.base, { tolerations = [{ key = "a", effect = "Never" }] }) }
  expect_failures = [var.chart]
}

run "rejects_affinity_that_is_not_an_object" {
  command = plan
  variables { chart = merge(var.base, { affinity_json = "[1, 2]" }) }
  expect_failures = [var.chart]
}

run "rejects_negative_replica_count" {
  command = plan
  variables { chart = merge(var.base, { replica_count = -1 }) }
  expect_failures = [var.chart]
}

run "rejects_negative_min_replicas" {
  command = plan
  variables { chart = merge(var.base, { keda = { min_replica_count = -1 } }) }
  expect_failures = [var.chart]
}

run "rejects_max_below_min_replicas" {
  command = plan
  variables { chart = merge(var.base, { keda = { min_replica_count = 5, max_replica_count = 2 } }) }
  expect_failures = [var.chart]
}

run "rejects_zero_polling_interval" {
  command = plan
  variables { chart = merge(var.base, { keda = { polling_interval = 0 } }) }
  expect_failures = [var.chart]
}

run "rejects_zero_list_length" {
  command = plan
  variables { chart = merge(var.base, { keda = { list_length = 0 } }) }
  expect_failures = [var.chart]
}

run "rejects_unknown_trigger_combination" {
  command = plan
  variables { chart = merge(var.base, { keda = { combine_triggers = "avg" } }) }
  expect_failures = [var.chart]
}

run "rejects_zero_pods_per_scale_down_period" {
  command = plan
  variables { chart = merge(var.base, { keda = { scale_down = { pods_per_period = 0 } } }) }
  expect_failures = [var.chart]
}

run "rejects_scale_down_window_above_the_hpa_limit" {
  command = plan
  variables { chart = merge(var.base, { keda = { scale_down = { stabilization_window_seconds = 7200 } } }) }
  expect_failures = [var.chart]
}

run "rejects_zero_surge" {
  command = plan
  variables { rollout_max_surge_percent = 0 }
  expect_failures = [var.rollout_max_surge_percent]
}

run "rejects_bad_service_account_name" {
  command = plan
  variables { chart = merge(var.base, { service_account = { name = "Worker SA" } }) }
  expect_failures = [var.chart]
}

run "rejects_service_port_out_of_range" {
  command = plan
  variables { chart = merge(var.base, { service_port = 0 }) }
  expect_failures = [var.chart]
}

run "rejects_pdb_blocking_drains" {
  command = plan
  variables { chart = merge(var.base, { pod_disruption_budget = { max_unavailable = 0 } }) }
  expect_failures = [var.chart]
}

run "rejects_bad_redis_cidr" {
  command = plan
  variables { chart = merge(var.base, { network_policy = { redis_cidr = "10.0.0.0" } }) }
  expect_failures = [var.chart]
}

run "rejects_bad_monitoring_namespace" {
  command = plan
  variables { monitoring_namespace = "Monitoring" }
  expect_failures = [var.monitoring_namespace]
}

run "rejects_extra_egress_that_is_not_a_list" {
  command = plan
  variables { chart = merge(var.base, { network_policy = { extra_egress_json = "{\"ports\": []}" } }) }
  expect_failures = [var.chart]
}

run "rejects_extra_egress_of_scalars" {
  command = plan
  variables { chart = merge(var.base, { network_policy = { extra_egress_json = "[443]" } }) }
  expect_failures = [var.chart]
}

run "rejects_bad_pod_monitor_interval" {
  command = plan
  variables { chart = merge(var.base, { pod_monitor = { interval = "30 seconds" } }) }
  expect_failures = [var.chart]
}

run "rejects_malformed_digest" {
  command = plan
  variables { chart = merge(var.base, { image = { repository = "ghcr.io/example/workflow-worker", tag = "0.1.0", digest = "sha256:xyz" } }) }
  expect_failures = [var.chart]
}

run "rejects_secret_env_with_a_bad_name" {
  command = plan
  variables { chart = merge(var.base, { secret_env = { "api-token" = { secret = "my-app", key = "token" } } }) }
  expect_failures = [var.chart]
}

run "rejects_secret_env_from_a_bad_secret_name" {
  command = plan
  variables { chart = merge(var.base, { secret_env = { API_TOKEN = { secret = "My App", key = "token" } } }) }
  expect_failures = [var.chart]
}

run "rejects_secret_env_with_a_bad_key" {
  command = plan
  variables { chart = merge(var.base, { secret_env = { API_TOKEN = { secret = "my-app", key = "a key" } } }) }
  expect_failures = [var.chart]
}

run "rejects_env_from_a_bad_secret_name" {
  command = plan
  variables { chart = merge(var.base, { env_from_secrets = ["Not_A_Name"] }) }
  expect_failures = [var.chart]
}

run "rejects_root_uid" {
  command = plan
  variables { chart = merge(var.base, { security_context = { uid = 0 } }) }
  expect_failures = [var.chart]
}

run "rejects_zero_probe_period" {
  command = plan
  variables { chart = merge(var.base, { probes = { readiness = { period_seconds = 0 } } }) }
  expect_failures = [var.chart]
}

run "rejects_negative_liveness_delay" {
  command = plan
  variables { chart = merge(var.base, { probes = { liveness = { initial_delay_seconds = -1 } } }) }
  expect_failures = [var.chart]
}

run "rejects_unknown_topology_policy" {
  command = plan
  variables { chart = merge(var.base, { topology_spread = [{ topology_key = "kubernetes.io/hostname", when_unsatisfiable = "Maybe" }] }) }
  expect_failures = [var.chart]
}

run "rejects_zero_topology_skew" {
  command = plan
  variables { chart = merge(var.base, { topology_spread = [{ topology_key = "kubernetes.io/hostname", max_skew = 0 }] }) }
  expect_failures = [var.chart]
}

run "rejects_bad_priority_class_name" {
  command = plan
  variables { chart = merge(var.base, { priority_class_name = "High Priority" }) }
  expect_failures = [var.chart]
}

run "rejects_extra_volumes_that_are_not_a_list" {
  command = plan
  variables { chart = merge(var.base, { extra_volumes_json = "{\"name\": \"x\"}" }) }
  expect_failures = [var.chart]
}

run "rejects_extra_volume_without_name" {
  command = plan
  variables { chart = merge(var.base, { extra_volumes_json = "[{\"emptyDir\": {}}]" }) }
  expect_failures = [var.chart]
}

run "rejects_extra_mount_without_path" {
  command = plan
  variables { chart = merge(var.base, { extra_volume_mounts_json = "[{\"name\": \"x\"}]" }) }
  expect_failures = [var.chart]
}

run "rejects_fallback_above_max_replicas" {
  command = plan
  variables { chart = merge(var.base, { keda = { max_replica_count = 5, fallback = { enabled = true, replicas = 6 } } }) }
  expect_failures = [var.chart]
}

run "rejects_unknown_fallback_behavior" {
  command = plan
  variables { chart = merge(var.base, { keda = { fallback = { behavior = "sometimes" } } }) }
  expect_failures = [var.chart]
}

run "rejects_unknown_eviction_policy" {
  command = plan
  variables { chart = merge(var.base, { pod_disruption_budget = { unhealthy_pod_eviction_policy = "Never" } }) }
  expect_failures = [var.chart]
}

run "rejects_short_helm_timeout" {
  command = plan
  variables { helm_timeout_seconds = 120 }
  expect_failures = [var.helm_timeout_seconds]
}

run "rejects_fractional_pod_deletion_cost_interval" {
  command = plan
  variables { chart = merge(var.base, { pod_deletion_cost = { enabled = true, interval_seconds = 0.5 } }) }
  expect_failures = [var.chart]
}

run "rejects_pod_deletion_cost_interval_above_an_hour" {
  command = plan
  variables { chart = merge(var.base, { pod_deletion_cost = { interval_seconds = 3601 } }) }
  expect_failures = [var.chart]
}

run "rejects_bad_api_server_cidr" {
  command = plan
  variables { chart = merge(var.base, { pod_deletion_cost = { api_server_cidr = "the api server" } }) }
  expect_failures = [var.chart]
}

run "rejects_a_console_without_a_secret" {
  command = plan
  variables { chart = merge(var.base, { console = { enabled = true } }) }
  expect_failures = [var.chart]
}

run "rejects_a_console_with_half_a_basic_pair" {
  command = plan
  variables { chart = merge(var.base, { console = { enabled = true, existing_secret = "s", token_key = "", username_key = "u" } }) }
  expect_failures = [var.chart]
}
