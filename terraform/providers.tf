# Every provider reads the cluster (and Grafana) chosen by the workspace's settings file;
# credentials come from the kubeconfig and the environment, never from a .tfvars file.

provider "kubernetes" {
  config_path    = var.kubeconfig_path
  config_context = var.kube_context
}

provider "helm" {
  # Helm provider v3: kubernetes is an attribute, not a block.
  kubernetes = {
    config_path    = var.kubeconfig_path
    config_context = var.kube_context
  }
  # Show the rendered manifest diff in the plan (chart changes without a version bump).
  experiments = {
    manifest = true
  }
}

provider "grafana" {
  # Used only when dashboard.mode is "grafana". The token comes from GRAFANA_AUTH.
  url = var.grafana_url != "" ? var.grafana_url : null
}
