"""The root's workspaces end to end without providers: a provider-free copy of the root (its
variables, settings files, naming block and value pass-through) is applied per workspace, and the
rendered values are checked against the chart's schema and rendered by the real helm binary."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.terraform_helpers import (
    CHART,
    MODULES,
    REPO,
    WORKSPACES,
    WORKSPACES_DIR,
    copy_terraform_tree,
    find_tool,
    load_hcl,
    run,
    terraform,
    values_wrapper_root,
)

SCHEMA = CHART / "values.schema.json"


@pytest.fixture(scope="module")
def wrapper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised provider-free copy of the root (local state in a temporary directory)."""
    root = values_wrapper_root(tmp_path_factory.mktemp("root"))
    terraform("init", "-input=false", "-no-color", cwd=root)
    return root


def _select(root: Path, workspace: str) -> None:
    if terraform("workspace", "select", "-no-color", workspace, cwd=root, check=False).returncode:
        terraform("workspace", "new", "-no-color", workspace, cwd=root)


@pytest.fixture(scope="module")
def rendered(wrapper: Path) -> dict[str, dict[str, Any]]:
    """Per workspace: the chart values the root would pass to helm_release, and its namespace."""
    out: dict[str, dict[str, Any]] = {}
    for workspace in WORKSPACES:
        _select(wrapper, workspace)
        var_file = f"-var-file=workspaces/{workspace}.tfvars"
        terraform("apply", "-auto-approve", "-input=false", "-no-color", var_file, cwd=wrapper)
        text = terraform("output", "-raw", "values_yaml", cwd=wrapper).stdout
        namespace = terraform("output", "-raw", "namespace", cwd=wrapper).stdout
        out[workspace] = {"yaml": text, "values": yaml.safe_load(text), "namespace": namespace}
    return out


def _plan_error(root: Path, workspace: str, settings: str) -> str:
    _select(root, workspace)
    proc = terraform(
        "plan", "-input=false", "-no-color", f"-var-file=workspaces/{settings}.tfvars",
        cwd=root, check=False,
    )  # fmt: skip
    assert proc.returncode != 0, f"plan in {workspace} with {settings}.tfvars succeeded"
    return " ".join(proc.stderr.split())


def test_plan_fails_in_a_workspace_without_settings_file(wrapper: Path) -> None:
    """In a workspace that has no workspaces/<name>.tfvars, plan stops and names the fix."""
    error = _plan_error(wrapper, "qa", "hmg")
    assert 'Terraform workspace "qa" has no settings file' in error, error
    assert "(hmg, production, staging)" in error, error


def test_plan_fails_in_the_default_workspace(wrapper: Path) -> None:
    """The default workspace has no settings file either, so plan refuses it."""
    error = _plan_error(wrapper, "default", "production")
    assert 'Terraform workspace "default" has no settings file' in error, error


def test_plan_fails_with_another_workspaces_settings(wrapper: Path) -> None:
    """Applying staging's settings in the production workspace fails before touching anything."""
    error = _plan_error(wrapper, "production", "staging")
    assert 'are for "staging" but the selected workspace is "production"' in error, error


@pytest.mark.parametrize("workspace", WORKSPACES)
def test_workspace_values_follow_its_settings(
    rendered: dict[str, dict[str, Any]], workspace: str
) -> None:
    """The values rendered for a workspace carry its image, sizes, Redis address and Secret name."""
    settings = load_hcl(WORKSPACES_DIR / f"{workspace}.tfvars")
    values = rendered[workspace]["values"]
    assert rendered[workspace]["namespace"] == settings["namespace"]
    assert values["image"]["repository"] == settings["image"]["repository"]
    assert values["image"]["tag"] == settings["image"]["tag"]
    assert values["worker"]["concurrency"] == settings["worker"]["concurrency"]
    assert values["keda"]["maxReplicaCount"] == settings["keda"]["max_replica_count"]
    assert values["keda"]["listLength"] == settings["worker"]["concurrency"]
    assert values["resources"] == settings["resources"]
    assert values["redis"]["host"] == settings["redis"]["host"]
    assert values["redis"]["existingSecret"] == settings["redis"]["existing_secret"]
    assert values["terminationGracePeriodSeconds"] > values["worker"]["shutdownTimeoutSeconds"] + 15


def _schema() -> dict[str, Any]:
    assert SCHEMA.is_file(), f"{SCHEMA.relative_to(REPO)} is missing: the chart must ship a schema"
    schema: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return schema


@pytest.mark.parametrize("workspace", WORKSPACES)
def test_workspace_values_pass_the_chart_schema(
    rendered: dict[str, dict[str, Any]], workspace: str
) -> None:
    """Terraform's values for each workspace satisfy helm/workflow-worker/values.schema.json."""
    schema = _schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = [
        f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator_cls(schema).iter_errors(rendered[workspace]["values"])
    ]
    assert errors == []


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for helm with its cache, config and data in a temporary directory."""
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[name] = str(home / name.lower())
    return env


def _helm_template(
    values_file: Path, namespace: str, env: dict[str, str]
) -> Iterator[dict[str, Any]]:
    helm = find_tool("helm", ".tools/bin/helm")
    proc = run(
        [
            helm, "template", "workflow-worker", str(CHART), "--namespace", namespace,
            "-f", str(values_file),
            "--api-versions", "keda.sh/v1alpha1", "--api-versions", "monitoring.coreos.com/v1",
        ],
        REPO,
        env,
    )  # fmt: skip
    return (doc for doc in yaml.safe_load_all(proc.stdout) if doc)


@pytest.mark.parametrize("workspace", WORKSPACES)
def test_helm_template_renders_each_workspace(
    rendered: dict[str, dict[str, Any]],
    workspace: str,
    helm_home: dict[str, str],
    tmp_path: Path,
) -> None:
    """`helm template` renders the chart with each workspace's values: image, grace period, the
    ConfigMap settings, KEDA bounds and the Redis Secret reference all come from Terraform."""
    _schema()
    values_file = tmp_path / "values.yaml"
    values_file.write_text(rendered[workspace]["yaml"], encoding="utf-8")
    values = rendered[workspace]["values"]
    objects = {doc["kind"]: doc for doc in _helm_template(values_file, "ns", helm_home)}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == f"{values['image']['repository']}:{values['image']['tag']}"
    assert pod["terminationGracePeriodSeconds"] == values["terminationGracePeriodSeconds"]
    assert container["resources"] == values["resources"]
    config = objects["ConfigMap"]["data"]
    assert config["WORKER_CONCURRENCY"] == str(values["worker"]["concurrency"])
    assert objects["ScaledObject"]["spec"]["maxReplicaCount"] == values["keda"]["maxReplicaCount"]
    password = [e for e in container.get("env", []) if e["name"] == "REDIS_PASSWORD"]
    assert password
    assert password[0]["valueFrom"]["secretKeyRef"]["name"] == (values["redis"]["existingSecret"])
    assert "Secret" not in objects


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}/{k}"))
        return out
    return {prefix: value}


def test_terraform_defaults_equal_the_chart_defaults(tmp_path: Path) -> None:
    """With only image and Redis host set, the values module renders exactly the keys and defaults
    of the chart's values.yaml (listLength resolved to the concurrency), so neither side drifts."""
    chart = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    module = copy_terraform_tree(tmp_path) / "modules" / "values"
    image = chart["image"]
    terraform(
        "apply", "-auto-approve", "-input=false", "-no-color",
        f"-var=image={{repository = \"{image['repository']}\", tag = \"{image['tag']}\"}}",
        f"-var=redis={{host = \"{chart['redis']['host']}\"}}",
        cwd=module,
    )  # fmt: skip
    ours = yaml.safe_load(terraform("output", "-raw", "yaml", cwd=module).stdout)
    chart_leaves, our_leaves = _leaves(chart), _leaves(ours)
    assert sorted(set(chart_leaves) ^ set(our_leaves)) == [], "keys differ between TF and chart"
    assert chart_leaves.pop("/keda/listLength") is None
    assert our_leaves.pop("/keda/listLength") == chart["worker"]["concurrency"]
    differing = {k: (our_leaves[k], v) for k, v in chart_leaves.items() if our_leaves[k] != v}
    assert differing == {}, "defaults differ (terraform, chart)"


def test_module_sources_of_the_wrapper_are_the_real_modules() -> None:
    """The wrapper root renders through the same values and naming modules as the real root."""
    for name in ("values", "naming"):
        assert (MODULES / name / "main.tf").is_file()
