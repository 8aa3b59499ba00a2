# Unit tests of the scrape-config module: the job keeps only the worker's pods, reads the
# prometheus.io/* annotations and relabels namespace and pod; one negative run per validation.

run "default_job_keeps_only_annotated_worker_pods" {
  command = apply

  assert {
    condition     = length(output.jobs) == 1 && output.jobs[0].job_name == "workflow-worker"
    error_message = "expected one job named workflow-worker"
  }
  assert {
    condition     = jsonencode(output.jobs[0].kubernetes_sd_configs) == jsonencode([{ role = "pod" }])
    error_message = "without namespaces the job must discover pods in all namespaces"
  }
  # Both keep rules are required: the annotation AND the chart's name label.
  assert {
    condition     = anytrue([for r in output.jobs[0].relabel_configs : r.action == "keep" && jsonencode(try(r.source_labels, [])) == jsonencode(["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]) && try(r.regex, "") == "true"])
    error_message = "no keep rule on the prometheus.io/scrape annotation"
  }
  assert {
    condition     = anytrue([for r in output.jobs[0].relabel_configs : r.action == "keep" && jsonencode(try(r.source_labels, [])) == jsonencode(["__meta_kubernetes_pod_label_app_kubernetes_io_name"]) && try(r.regex, "") == "workflow-worker"])
    error_message = "no keep rule on app.kubernetes.io/name=workflow-worker"
  }
  assert {
    condition     = anytrue([for r in output.jobs[0].relabel_configs : try(r.target_label, "") == "__metrics_path__" && jsonencode(try(r.source_labels, [])) == jsonencode(["__meta_kubernetes_pod_annotation_prometheus_io_path"])])
    error_message = "prometheus.io/path is not read"
  }
  assert {
    condition     = anytrue([for r in output.jobs[0].relabel_configs : try(r.target_label, "") == "__scheme__" && jsonencode(try(r.source_labels, [])) == jsonencode(["__meta_kubernetes_pod_annotation_prometheus_io_scheme"])])
    error_message = "prometheus.io/scheme is not read"
  }
  assert {
    condition     = length([for r in output.jobs[0].relabel_configs : r if try(r.target_label, "") == "__address__" && try(r.source_labels[0], "") == "__meta_kubernetes_pod_annotation_prometheus_io_port"]) == 2
    error_message = "prometheus.io/port must rewrite __address__ for IPv4 and IPv6 pod IPs"
  }
  assert {
    condition     = anytrue([for r in output.jobs[0].relabel_configs : try(r.target_label, "") == "namespace" && jsonencode(try(r.source_labels, [])) == jsonencode(["__meta_kubernetes_namespace"])])
    error_message = "namespace label not relabelled"
  }
  assert {
    condition     = anytrue([for r in output.jobs[0].relabel_configs : try(r.target_label, "") == "pod" && jsonencode(try(r.source_labels, [])) == jsonencode(["__meta_kubernetes_pod_name"])])
    error_message = "pod label not relabelled"
  }
  # The keep rules come before any rewrite, so dropped pods cost nothing.
  assert {
    condition     = output.jobs[0].relabel_configs[0].action == "keep" && output.jobs[0].relabel_configs[1].action == "keep"
    error_message = "keep rules must come first"
  }
  assert {
    condition     = yamldecode(output.additional_scrape_configs_yaml)[0].job_name == "workflow-worker"
    error_message = "additional_scrape_configs_yaml is not a YAML list of jobs"
  }
  assert {
    condition     = yamldecode(output.prometheus_yml).scrape_configs[0].job_name == "workflow-worker"
    error_message = "prometheus_yml is not a scrape_configs document"
  }
  assert {
    condition     = output.jobs[0].scrape_interval == "30s" && output.jobs[0].scrape_timeout == "10s"
    error_message = "default interval / timeout not rendered"
  }
}

run "namespaces_name_override_and_labels" {
  command = plan
  variables {
    job_name        = "workflow-worker-production"
    namespaces      = ["jobs", "jobs-batch"]
    app_name        = "billing-worker"
    scrape_interval = null
    scrape_timeout  = null
    extra_labels    = { environment = "production" }
  }
  assert {
    condition     = jsonencode(output.jobs[0].kubernetes_sd_configs) == jsonencode([{ namespaces = { names = ["jobs", "jobs-batch"] }, role = "pod" }])
    error_message = "namespaces not restricted"
  }
  assert {
    condition     = anytrue([for r in output.jobs[0].relabel_configs : r.action == "keep" && try(r.regex, "") == "billing-worker"])
    error_message = "app_name not used in the keep rule"
  }
  assert {
    condition     = anytrue([for r in output.jobs[0].relabel_configs : try(r.target_label, "") == "environment" && try(r.replacement, "") == "production"])
    error_message = "extra label not added"
  }
  assert {
    condition     = !contains(keys(output.jobs[0]), "scrape_interval") && !contains(keys(output.jobs[0]), "scrape_timeout")
    error_message = "null interval / timeout must be left out so Prometheus' globals apply"
  }
}

run "rejects_bad_job_name" {
  command = plan
  variables { job_name = "1 job" }
  expect_failures = [var.job_name]
}

run "rejects_bad_namespace" {
  command = plan
  variables { namespaces = ["Jobs"] }
  expect_failures = [var.namespaces]
}

run "rejects_repeated_namespace" {
  command = plan
  variables { namespaces = ["jobs", "jobs"] }
  expect_failures = [var.namespaces]
}

run "rejects_bad_app_name" {
  command = plan
  variables { app_name = "workflow_worker" }
  expect_failures = [var.app_name]
}

run "rejects_bad_interval" {
  command = plan
  variables { scrape_interval = "30" }
  expect_failures = [var.scrape_interval]
}

run "rejects_bad_timeout" {
  command = plan
  variables { scrape_timeout = "ten seconds" }
  expect_failures = [var.scrape_timeout]
}

run "rejects_timeout_longer_than_interval" {
  command = plan
  variables {
    scrape_interval = "15s"
    scrape_timeout  = "1m"
  }
  expect_failures = [var.scrape_timeout]
}

run "rejects_reserved_label_name" {
  command = plan
  variables { extra_labels = { __address__ = "x" } }
  expect_failures = [var.extra_labels]
}
