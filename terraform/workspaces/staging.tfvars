# Settings of the staging workspace:
#   terraform workspace select -or-create staging && terraform apply -var-file=workspaces/staging.tfvars
# Names only: the Redis password lives in the Kubernetes Secret named below, never here.

environment  = "staging"
kube_context = "staging-cluster"
namespace    = "workflow-worker-staging"

monitoring = {
  delivery  = "secret"
  namespace = "monitoring"
}

chart = {
  image = {
    repository = "ghcr.io/example/workflow-worker"
    tag        = "0.1.0"
  }

  # Chart defaults per pod: 50 jobs, 1 CPU, 3Gi.
  worker = {
    concurrency = 50
  }
  resources = {
    requests = { cpu = "1", memory = "3Gi" }
    limits   = { cpu = "1", memory = "3Gi" }
  }
  keda = {
    min_replica_count = 1
    max_replica_count = 20
  }

  redis = {
    mode            = "sentinel"
    host            = "redis-sentinel.redis.svc.cluster.local"
    existing_secret = "workflow-worker-redis"
    sentinel = {
      master_name = "mymaster"
      port        = 26379
    }
  }
}
