# Unit tests of the naming module: names per workspace, and the refusal to plan a workspace
# without a settings file (tests/settings/ holds hmg.tfvars and production.tfvars).

variables {
  settings_dir = "./tests/settings"
  workspace    = "hmg"
  environment  = "hmg"
}

run "names_derive_from_the_workspace" {
  command = apply

  assert {
    condition     = output.namespace == "workflow-worker-hmg" && output.release_name == "workflow-worker"
    error_message = "default namespace is not workflow-worker-<workspace>"
  }
  assert {
    condition     = output.settings_file == "./tests/settings/hmg.tfvars"
    error_message = "settings_file does not point at <settings_dir>/<workspace>.tfvars"
  }
  assert {
    condition     = output.scrape_job_name == "workflow-worker-hmg" && output.scrape_config_name == "workflow-worker-hmg-scrape-config" && output.dashboard_configmap_name == "workflow-worker-hmg-dashboard"
    error_message = "object names do not carry the release and workspace"
  }
  assert {
    condition     = output.labels["workflow-worker/environment"] == "hmg" && output.labels["app.kubernetes.io/managed-by"] == "terraform"
    error_message = "labels do not carry the environment and the manager"
  }
  # The namespace enforces the restricted Pod Security Standard by default.
  assert {
    condition     = output.namespace_labels["pod-security.kubernetes.io/enforce"] == "restricted" && output.namespace_labels["pod-security.kubernetes.io/warn"] == "restricted" && output.namespace_labels["pod-security.kubernetes.io/audit"] == "restricted"
    error_message = "the namespace does not enforce, warn and audit the restricted Pod Security Standard"
  }
  assert {
    condition     = output.namespace_labels["workflow-worker/environment"] == "hmg"
    error_message = "the namespace labels lost the common labels"
  }
}

run "a_laxer_enforced_level_still_warns_at_restricted" {
  command = plan
  variables {
    pod_security_level = "baseline"
  }
  assert {
    condition     = output.namespace_labels["pod-security.kubernetes.io/enforce"] == "baseline" && output.namespace_labels["pod-security.kubernetes.io/warn"] == "restricted"
    error_message = "pod_security_level must set enforce only"
  }
}

run "refuses_an_unknown_pod_security_level" {
  command = plan
  variables {
    pod_security_level = "strict"
  }
  expect_failures = [var.pod_security_level]
}

run "explicit_namespace_and_labels_are_kept" {
  command = plan
  variables {
    workspace    = "production"
    environment  = "production"
    namespace    = "jobs"
    release_name = "billing-worker"
    extra_labels = { team = "billing" }
  }
  assert {
    condition     = output.namespace == "jobs" && output.scrape_job_name == "billing-worker-production"
    error_message = "explicit namespace / release name not used"
  }
  assert {
    condition     = output.labels["team"] == "billing" && output.labels["app.kubernetes.io/instance"] == "billing-worker"
    error_message = "extra labels not merged"
  }
}

run "refuses_a_workspace_without_settings_file" {
  command = plan
  variables {
    workspace   = "qa"
    environment = "qa"
  }
  expect_failures = [var.workspace]
}

run "refuses_the_default_workspace" {
  command = plan
  variables {
    workspace   = "default"
    environment = "default"
  }
  expect_failures = [var.workspace]
}

run "refuses_settings_of_another_workspace" {
  command = plan
  variables {
    workspace   = "production"
    environment = "hmg"
  }
  expect_failures = [var.environment]
}

run "refuses_an_invalid_workspace_name" {
  command = plan
  variables {
    workspace   = "Prod_1"
    environment = "Prod_1"
  }
  expect_failures = [var.workspace]
}

run "refuses_an_empty_settings_dir" {
  command = plan
  variables { settings_dir = "" }
  expect_failures = [var.settings_dir]
}

run "refuses_a_long_release_name" {
  command = plan
  variables { release_name = "a-release-name-that-is-much-longer-than-helm-allows-it" }
  expect_failures = [var.release_name]
}

run "refuses_an_invalid_namespace" {
  command = plan
  variables { namespace = "Jobs" }
  expect_failures = [var.namespace]
}

run "refuses_an_invalid_label" {
  command = plan
  variables { extra_labels = { "team" = "billing team" } }
  expect_failures = [var.extra_labels]
}
