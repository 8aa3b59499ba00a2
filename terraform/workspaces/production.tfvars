# Settings of the production workspace:
#   terraform workspace select -or-create production && terraform apply -var-file=workspaces/production.tfvars
# Names only: the Redis password and CA live in the Kubernetes Secrets named below, never here.

environment  = "production"
kube_context = "production-cluster"
namespace    = "workflow-worker"

# The annotation-based scrape job; the NetworkPolicy admits this namespace.
monitoring = {
  delivery  = "secret"
  namespace = "monitoring"
}

# One Grafana serves all environments: the dashboard is delivered from production only.
dashboard = {
  enabled           = true
  mode              = "configmap"
  namespace         = "monitoring"
  folder_annotation = { grafana_folder = "Workers" }
}

chart = {
  image = {
    repository = "ghcr.io/example/workflow-worker"
    tag        = "0.1.0"
  }

  # Chart defaults per pod: 50 jobs, 1 CPU, 3Gi. 200 pods carry 10 000 concurrent workflows.
  worker = {
    concurrency = 50
  }
  resources = {
    requests = { cpu = "1", memory = "3Gi" }
    limits   = { cpu = "1", memory = "3Gi" }
  }
  keda = {
    min_replica_count = 2
    max_replica_count = 200
  }
  # Spread the 200 pods over zones, so losing one zone loses a third, not all.
  topology_spread = [{ topology_key = "topology.kubernetes.io/zone" }]

  # Sentinel over TLS: the worker and KEDA reach the Sentinels and the primary with TLS and the CA
  # below. If your Sentinels are started with requirepass (the Redis password), add
  # password_from_secret = true to sentinel.
  redis = {
    mode            = "sentinel"
    host            = "redis-sentinel.redis.svc.cluster.local"
    existing_secret = "workflow-worker-redis"
    tls = {
      enabled   = true
      ca_secret = "redis-ca"
    }
    sentinel = {
      master_name = "mymaster"
      port        = 26379
    }
  }

  network_policy = {
    enabled    = true
    redis_cidr = "10.0.0.0/8"
  }
  prometheus_rule = {
    enabled = true
    labels  = { release = "kube-prometheus-stack" }
  }
}
