# Settings of the hmg (homologation) workspace:
#   terraform workspace select -or-create hmg && terraform apply -var-file=workspaces/hmg.tfvars
# Names only: the Redis password lives in the Kubernetes Secret named below, never here.

environment  = "hmg"
kube_context = "hmg-cluster"
namespace    = "workflow-worker-hmg"

monitoring = {
  delivery  = "secret"
  namespace = "monitoring"
}

chart = {
  image = {
    repository = "ghcr.io/example/workflow-worker"
    tag        = "0.1.0"
  }

  # Half-size pods: 25 jobs on half a CPU.
  worker = {
    concurrency = 25
    log_level   = "DEBUG"
  }
  resources = {
    requests = { cpu = "500m", memory = "1536Mi" }
    limits   = { cpu = "500m", memory = "1536Mi" }
  }
  keda = {
    min_replica_count = 1
    max_replica_count = 3
  }

  redis = {
    mode            = "standalone"
    host            = "redis-master.redis-hmg.svc.cluster.local"
    port            = 6379
    existing_secret = "workflow-worker-redis"
  }
}
