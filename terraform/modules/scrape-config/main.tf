locals {
  # Relabelling follows the prometheus-community chart's kubernetes-pods job (prometheus.io/*
  # annotations), narrowed to the worker's pods by both the annotation and the name label.
  relabel_configs = concat(
    [
      {
        source_labels = ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
        action        = "keep"
        regex         = "true"
      },
      {
        source_labels = ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
        action        = "keep"
        regex         = var.app_name
      },
      # Pods that are starting or finished have no metrics endpoint worth an alert.
      {
        source_labels = ["__meta_kubernetes_pod_phase"]
        action        = "drop"
        regex         = "Pending|Succeeded|Failed|Completed"
      },
      {
        source_labels = ["__meta_kubernetes_pod_annotation_prometheus_io_scheme"]
        action        = "replace"
        regex         = "(https?)"
        target_label  = "__scheme__"
      },
      {
        source_labels = ["__meta_kubernetes_pod_annotation_prometheus_io_path"]
        action        = "replace"
        regex         = "(.+)"
        target_label  = "__metrics_path__"
      },
      # The port annotation replaces the discovered port; IPv6 pod IPs need brackets.
      {
        source_labels = ["__meta_kubernetes_pod_annotation_prometheus_io_port", "__meta_kubernetes_pod_ip"]
        action        = "replace"
        regex         = "(\\d+);(([A-Fa-f0-9]{1,4}::?){1,7}[A-Fa-f0-9]{1,4})"
        replacement   = "[$2]:$1"
        target_label  = "__address__"
      },
      {
        source_labels = ["__meta_kubernetes_pod_annotation_prometheus_io_port", "__meta_kubernetes_pod_ip"]
        action        = "replace"
        regex         = "(\\d+);((([0-9]+?)(\\.|$)){4})"
        replacement   = "$2:$1"
        target_label  = "__address__"
      },
      {
        source_labels = ["__meta_kubernetes_namespace"]
        action        = "replace"
        target_label  = "namespace"
      },
      {
        source_labels = ["__meta_kubernetes_pod_name"]
        action        = "replace"
        target_label  = "pod"
      },
      {
        source_labels = ["__meta_kubernetes_pod_node_name"]
        action        = "replace"
        target_label  = "node"
      },
    ],
    [
      for k in sort(keys(var.extra_labels)) : {
        action       = "replace"
        replacement  = var.extra_labels[k]
        target_label = k
      }
    ],
  )

  sd_config = { for k, v in {
    role       = "pod"
    namespaces = length(var.namespaces) == 0 ? null : { names = var.namespaces }
  } : k => v if v != null }

  # null attributes are dropped so that Prometheus' globals apply.
  job = { for k, v in {
    job_name              = var.job_name
    scrape_interval       = var.scrape_interval
    scrape_timeout        = var.scrape_timeout
    kubernetes_sd_configs = [local.sd_config]
    relabel_configs       = local.relabel_configs
  } : k => v if v != null }

  jobs = [local.job]
}
