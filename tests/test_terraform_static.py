"""Static checks of terraform/ with python-hcl2: the layer that calls providers cannot be planned
offline, so its shape is checked here (parsing, variable use, the helm_release, the settings)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.terraform_helpers import (
    CHART,
    DASHBOARD_JSON,
    MODULES,
    PROVIDER_MODULES,
    REPO,
    TERRAFORM,
    WORKSPACES,
    WORKSPACES_DIR,
    blocks,
    load_hcl,
    module_docs,
    module_files,
    outputs_of,
    readme_with_docs,
    resources,
    variable_type_text,
    variables_of,
)

MODULE_DIRS = sorted(p for p in MODULES.iterdir() if p.is_dir())
ALL_DIRS = [*MODULE_DIRS, TERRAFORM]
TF_FILES = sorted(TERRAFORM.rglob("*.tf")) + sorted(TERRAFORM.rglob("*.tfvars"))


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(TERRAFORM)) or "root" for p in paths]


@pytest.mark.parametrize("path", TF_FILES, ids=_ids(TF_FILES))
def test_hcl_parses(path: Path) -> None:
    """Every .tf and .tfvars file under terraform/ is valid HCL2."""
    assert isinstance(load_hcl(path), dict)


def _references_outside(module_dir: Path, name: str) -> bool:
    pattern = re.compile(rf"\bvar\.{re.escape(name)}\b")
    for path in module_files(module_dir):
        parsed = load_hcl(path)
        for kind, entries in parsed.items():
            for entry in entries if isinstance(entries, list) else [entries]:
                # A variable's own validation does not count as a use.
                if kind == "variable" and name in entry:
                    continue
                if pattern.search(str(entry)):
                    return True
    return False


@pytest.mark.parametrize("module_dir", ALL_DIRS, ids=_ids(ALL_DIRS))
def test_every_variable_is_documented_typed_and_used(module_dir: Path) -> None:
    """Each declared variable has a description and a type, and is referenced in its module."""
    variables = variables_of(module_dir)
    assert variables, f"{module_dir} declares no variable"
    for name, body in variables.items():
        assert str(body.get("description", "")).strip(), f"{name}: no description"
        assert "type" in body, f"{name}: no type"
        assert "any" not in str(body["type"]), f"{name}: type any"
        assert _references_outside(module_dir, name), f"{name} is declared but never used"


@pytest.mark.parametrize("module_dir", ALL_DIRS, ids=_ids(ALL_DIRS))
def test_every_output_is_described(module_dir: Path) -> None:
    """Each output has a description."""
    for name, body in outputs_of(module_dir).items():
        assert str(body.get("description", "")).strip(), f"output {name}: no description"


@pytest.mark.parametrize("module_dir", ALL_DIRS, ids=_ids(ALL_DIRS))
def test_readme_tables_are_current(module_dir: Path) -> None:
    """Each README's inputs/outputs tables match the code (`-m tests.terraform_helpers docs`)."""
    readme = module_dir / "README.md"
    assert readme.read_text(encoding="utf-8") == readme_with_docs(readme, module_docs(module_dir))


def _required_providers(module_dir: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in module_files(module_dir):
        for block in load_hcl(path).get("terraform", []):
            for rp in block.get("required_providers", []):
                found.update(rp)
    return found


@pytest.mark.parametrize("module_dir", ALL_DIRS, ids=_ids(ALL_DIRS))
def test_versions_are_bounded_and_providers_configured_only_in_the_root(module_dir: Path) -> None:
    """required_version and provider versions have lower and upper bounds; only the root has
    provider blocks; provider-free modules require no provider."""
    texts = [p.read_text(encoding="utf-8") for p in module_files(module_dir)]
    versions = [load_hcl(p) for p in module_files(module_dir)]
    required = [
        b["required_version"]
        for v in versions
        for b in v.get("terraform", [])
        if "required_version" in b
    ]
    assert len(required) == 1
    assert ">=" in required[0]
    assert "<" in required[0].replace("<=", "")
    providers = _required_providers(module_dir)
    for name, spec in providers.items():
        assert ">=" in spec["version"], f"{name}: no lower bound"
        assert "<" in spec["version"], f"{name}: no upper bound"
    has_provider_block = any(re.search(r'^provider\s+"', t, re.MULTILINE) for t in texts)
    assert has_provider_block == (module_dir == TERRAFORM)
    if module_dir.name in ("values", "naming", "scrape-config"):
        assert providers == {}
        assert [r for v in versions for r in resources(v)] == []


def _single_resource(module: str, rtype: str) -> dict[str, Any]:
    found = [
        (name, body)
        for path in module_files(MODULES / module)
        for t, name, body in resources(load_hcl(path))
        if t == rtype
    ]
    assert [name for name, _ in found] == ["this"]
    return found[0][1]


def test_helm_release_installs_this_repos_chart_from_yamlencoded_values() -> None:
    """helm_release.this points at helm/workflow-worker, takes the values module's yamlencode
    output (no set list), and waits atomically with Helm's timeout and provider timeouts that
    outlast it."""
    release = _single_resource("worker", "helm_release")
    main = load_hcl(MODULES / "worker" / "main.tf")
    local_defs = {k: v for block in main["locals"] for k, v in block.items()}
    assert release["chart"] == "${local.chart_path}"
    chart_expr = local_defs["chart_path"]
    m = re.search(r"\$\{path\.module\}(/[^\"]+)", chart_expr)
    assert m, chart_expr
    chart_dir = (MODULES / "worker" / m.group(1).lstrip("/")).resolve()
    assert chart_dir == CHART.resolve()
    assert yaml.safe_load((chart_dir / "Chart.yaml").read_text())["name"] == "workflow-worker"
    assert release["values"] == ["${var.values_yaml}"]
    for forbidden in ("set", "set_list", "set_sensitive", "set_string"):
        assert forbidden not in release, f"helm_release uses {forbidden}"
    assert release["wait"] is True
    assert release["cleanup_on_fail"] is True
    assert release["atomic"] == "${var.atomic}"
    assert "max_history" in release
    assert release["timeout"] == "${var.timeout_seconds}"
    assert release["timeouts"] == {
        "create": "${local.operation_timeout}",
        "update": "${local.operation_timeout}",
        "delete": "${local.operation_timeout}",
    }
    assert local_defs["operation_timeout"] == "${var.operation_timeout_seconds}s"
    assert "yamlencode(local.values)" in str(outputs_of(MODULES / "values")["yaml"]["value"])
    root = dict(blocks(load_hcl(TERRAFORM / "main.tf"), "module"))["worker"]
    assert root["values_yaml"] == "${module.values.yaml}"
    assert root["timeout_seconds"] == "${module.values.helm_timeout_seconds}"
    assert root["operation_timeout_seconds"] == "${module.values.operation_timeout_seconds}"


def test_root_pins_a_helm_provider_with_release_timeouts() -> None:
    """The root pins the helm provider to 3.1.x (helm_release.timeouts exists from 3.1.0, so the
    provider's 20-minute default can be raised), and every provider to one minor version."""
    providers = _required_providers(TERRAFORM)
    assert providers["helm"]["version"] == ">= 3.1.2, < 3.2.0"
    for name, spec in providers.items():
        low = re.search(r">= (\d+)\.(\d+)\.\d+", spec["version"])
        high = re.search(r"< (\d+)\.(\d+)\.0", spec["version"])
        assert low, spec
        assert high, spec
        assert (int(high[1]), int(high[2])) == (int(low[1]), int(low[2]) + 1), name
    worker = _required_providers(MODULES / "worker")
    assert worker["helm"]["version"].startswith(">= 3.1.0")


def test_namespace_is_managed_with_pod_security_labels() -> None:
    """The worker module creates the namespace from the naming module's labels (Pod Security
    admission) and installs the release into it, without Helm creating namespaces."""
    namespace = _single_resource("worker", "kubernetes_namespace_v1")
    assert namespace["count"] == "${var.manage_namespace ? 1 : 0}"
    assert namespace["metadata"][0]["labels"] == "${var.namespace_labels}"
    release = _single_resource("worker", "helm_release")
    assert release["create_namespace"] is False
    assert release["namespace"] == "${local.namespace}"
    worker = dict(blocks(load_hcl(TERRAFORM / "main.tf"), "module"))["worker"]
    assert worker["namespace_labels"] == "${module.naming.namespace_labels}"
    assert worker["manage_namespace"] == "${var.manage_namespace}"


def test_helm_provider_uses_v3_attribute_syntax() -> None:
    """The helm provider sets kubernetes as an attribute (`kubernetes = {...}`), as v3 needs."""
    text = (TERRAFORM / "providers.tf").read_text(encoding="utf-8")
    helm = text[text.index('provider "helm"') :]
    helm = helm[: helm.index("\n}\n")]
    assert re.search(r"^\s*kubernetes\s*=\s*\{", helm, re.MULTILINE)
    assert not re.search(r"^\s*kubernetes\s*\{", helm, re.MULTILINE)
    assert "config_context = var.kube_context" in helm


def test_chart_values_are_one_typed_object() -> None:
    """The chart values are one `chart` object: the root declares exactly the type of
    modules/values' `chart` (which holds the rules) and passes it through unchanged; no other
    module declares chart values."""
    values_file = MODULES / "values" / "variables.tf"
    root_type = variable_type_text(TERRAFORM / "variables.tf", "chart")
    assert root_type == variable_type_text(values_file, "chart")
    assert root_type.startswith("object({ image = object({")
    assert "any" not in re.findall(r"\b\w+\b", root_type)
    values_call = dict(blocks(load_hcl(TERRAFORM / "main.tf"), "module"))["values"]
    assert values_call["chart"] == "${var.chart}"
    assert len(variables_of(MODULES / "values")["chart"]["validation"]) >= 40
    assert "validation" not in variables_of(TERRAFORM)["chart"]
    assert not set(variables_of(MODULES / "worker")) & {"chart", "image", "redis", "worker"}


def test_network_policy_admits_the_scrape_configs_namespace() -> None:
    """The NetworkPolicy's monitoring namespace is the scrape config's namespace (one setting):
    the chart object has no attribute for it, and the root passes monitoring.namespace."""
    assert "monitoring_namespace" not in variable_type_text(TERRAFORM / "variables.tf", "chart")
    values_call = dict(blocks(load_hcl(TERRAFORM / "main.tf"), "module"))["values"]
    monitoring_call = dict(blocks(load_hcl(TERRAFORM / "main.tf"), "module"))["monitoring"]
    assert values_call["monitoring_namespace"] == "${var.monitoring.namespace}"
    assert monitoring_call["namespace"] == "${var.monitoring.namespace}"


def test_remote_backend_locks_the_state() -> None:
    """The root has an S3 backend with lock files (one lock per workspace's state) and
    encryption; bucket, key and region come from -backend-config, and an example file shows them."""
    backend = load_hcl(TERRAFORM / "backend.tf")["terraform"][0]["backend"][0]["s3"]
    assert backend == {"use_lockfile": True, "encrypt": True}
    example = load_hcl(TERRAFORM / "backend.hcl.example")
    assert set(example) == {"bucket", "key", "region"}
    docs = (REPO / "docs" / "deploy-terraform.md").read_text(encoding="utf-8")
    assert "terraform init -backend-config=backend.hcl" in docs


def test_root_refuses_workspaces_without_settings() -> None:
    """The root hands terraform.workspace, the workspaces directory and the settings' environment
    to the naming module, whose validation fails the plan."""
    naming = dict(blocks(load_hcl(TERRAFORM / "main.tf"), "module"))["naming"]
    assert naming["workspace"] == "${terraform.workspace}"
    assert naming["settings_dir"] == "${path.root}/workspaces"
    assert naming["environment"] == "${var.environment}"
    validations = variables_of(MODULES / "naming")["workspace"]["validation"]
    assert any("fileexists" in v["condition"] for v in validations)


def test_provider_modules_choose_their_resources_by_variable() -> None:
    """monitoring creates a Secret or a ConfigMap, dashboard a grafana_dashboard or a sidecar
    ConfigMap, each gated by count on its choice variable."""
    secret = _single_resource("monitoring", "kubernetes_secret_v1")
    scrape_cm = _single_resource("monitoring", "kubernetes_config_map_v1")
    assert secret["count"] == '${var.delivery == "secret" ? 1 : 0}'
    assert scrape_cm["count"] == '${var.delivery == "configmap" ? 1 : 0}'
    assert "additional_scrape_configs_yaml" in str(secret["data"])
    assert "prometheus_yml" in str(scrape_cm["data"])
    dash = _single_resource("dashboard", "grafana_dashboard")
    dash_cm = _single_resource("dashboard", "kubernetes_config_map_v1")
    assert dash["count"] == '${var.mode == "grafana" ? 1 : 0}'
    assert dash_cm["count"] == '${var.mode == "configmap" ? 1 : 0}'
    assert dash["config_json"] == "${local.dashboard_json}"
    sidecar = variables_of(MODULES / "dashboard")["sidecar_label"]["default"]
    assert sidecar == {"grafana_dashboard": "1"}


def test_dashboard_module_reads_the_repos_dashboard_json() -> None:
    """The dashboard module's default path resolves to dashboards/workflow-worker.json."""
    main = load_hcl(MODULES / "dashboard" / "main.tf")
    local_defs = {k: v for block in main["locals"] for k, v in block.items()}
    assert "file(local.dashboard_json_path)" in local_defs["dashboard_json"]
    m = re.search(r"\$\{path\.module\}(/[^\"]+)", local_defs["dashboard_json_path"])
    assert m
    target = (MODULES / "dashboard" / m.group(1).lstrip("/")).resolve()
    assert target == DASHBOARD_JSON.resolve()
    assert DASHBOARD_JSON.is_file(), (
        "dashboards/workflow-worker.json is missing: run just dashboard"
    )


@pytest.mark.parametrize("module", PROVIDER_MODULES)
def test_provider_module_sources_exist(module: str) -> None:
    """Every local module a provider module or the root calls exists."""
    for module_dir in (MODULES / module, TERRAFORM):
        for _, call in blocks(load_hcl(module_dir / "main.tf"), "module"):
            assert (module_dir / call["source"]).resolve().is_dir(), call["source"]


SECRET_WORDS = re.compile(r"password|passwd|secret_value|token|api_key|private_key", re.IGNORECASE)


def _keys(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out.append(f"{prefix}{k}")
            out.extend(_keys(v, f"{prefix}{k}."))
        return out
    return []


@pytest.mark.parametrize("workspace", WORKSPACES)
def test_workspace_settings_set_the_required_variables(workspace: str) -> None:
    """Each workspace has a settings file that names its environment, cluster, namespace, image,
    sizes, Redis address and Secret name, declares only root variables, and holds no secret."""
    settings = load_hcl(WORKSPACES_DIR / f"{workspace}.tfvars")
    undeclared = set(settings) - set(variables_of(TERRAFORM))
    assert undeclared == set()
    assert settings["environment"] == workspace
    assert settings["kube_context"]
    assert settings["namespace"]
    chart = settings["chart"]
    assert chart["image"]["repository"]
    assert chart["image"]["tag"] not in ("", "latest")
    assert chart["worker"]["concurrency"] >= 1
    assert chart["keda"]["max_replica_count"] >= chart["keda"]["min_replica_count"] >= 1
    assert chart["resources"]["requests"]["cpu"]
    assert chart["resources"]["limits"]["memory"]
    assert chart["redis"]["host"]
    assert chart["redis"]["existing_secret"]
    leaked = [k for k in _keys(settings) if SECRET_WORDS.search(k)]
    assert leaked == [], f"settings must name Secrets, never hold secrets: {leaked}"
