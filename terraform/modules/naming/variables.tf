variable "workspace" {
  description = "The selected Terraform workspace (pass terraform.workspace). It must have a settings file <settings_dir>/<workspace>.tfvars."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$", var.workspace))
    error_message = "Terraform workspace \"${var.workspace}\" is not a valid environment name (lower case, digits, '-', at most 20 characters, starting with a letter)."
  }
  validation {
    condition     = fileexists("${var.settings_dir}/${var.workspace}.tfvars")
    error_message = "Terraform workspace \"${var.workspace}\" has no settings file ${var.settings_dir}/${var.workspace}.tfvars. Select a workspace that has one (${join(", ", sort([for f in fileset(var.settings_dir, "*.tfvars") : trimsuffix(f, ".tfvars")]))}): terraform workspace select -or-create <name>, or add the file."
  }
}

variable "settings_dir" {
  description = "Directory holding one <workspace>.tfvars settings file per workspace (the root passes \"$${path.root}/workspaces\")."
  type        = string
  nullable    = false

  validation {
    condition     = length(var.settings_dir) > 0
    error_message = "settings_dir must not be empty."
  }
}

variable "environment" {
  description = "The environment named inside the settings file that was passed with -var-file; it must equal the selected workspace."
  type        = string
  nullable    = false

  validation {
    condition     = var.environment == var.workspace
    error_message = "The settings passed with -var-file are for \"${var.environment}\" but the selected workspace is \"${var.workspace}\": run terraform apply -var-file=workspaces/${var.workspace}.tfvars, or terraform workspace select ${var.environment}."
  }
}

variable "release_name" {
  description = "Helm release name; also the prefix of the objects Terraform creates next to the release."
  type        = string
  default     = "workflow-worker"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,51}[a-z0-9])?$", var.release_name))
    error_message = "release_name must be a DNS-1123 label of at most 53 characters (Helm's limit), starting with a letter."
  }
}

variable "namespace" {
  description = "Namespace of the worker. Empty: workflow-worker-<workspace>."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.namespace == "" || can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be empty or a DNS-1123 label (lower case, digits, '-', at most 63 characters)."
  }
}

variable "extra_labels" {
  description = "Labels added to every object Terraform creates next to the release (the chart labels its own objects)."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for k, v in var.extra_labels : can(regex("^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", k)) && can(regex("^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$", v))])
    error_message = "extra_labels must hold valid Kubernetes label keys and values (values at most 63 characters of letters, digits, '-', '_', '.')."
  }
}

variable "pod_security_level" {
  description = "Pod Security Standard enforced on the worker's namespace (label pod-security.kubernetes.io/enforce): restricted (the chart meets it), baseline or privileged. Audit and warn stay at restricted."
  type        = string
  default     = "restricted"
  nullable    = false

  validation {
    condition     = contains(["restricted", "baseline", "privileged"], var.pod_security_level)
    error_message = "pod_security_level must be restricted, baseline or privileged."
  }
}
