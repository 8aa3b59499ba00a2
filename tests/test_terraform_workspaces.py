"""The root's workspaces end to end without providers: a provider-free copy of the root (its
variables, settings files, naming block and value pass-through) is applied per workspace, and the
rendered values are checked against the chart's schema and rendered by the real helm binary."""

from __future__ import annotations

import json
import os
import re
import subprocess
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
    TERRAFORM,
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
        outputs = json.loads(terraform("output", "-json", cwd=wrapper).stdout)
        text = outputs["values_yaml"]["value"]
        out[workspace] = {
            "yaml": text,
            "values": yaml.safe_load(text),
            **{name: item["value"] for name, item in outputs.items() if name != "values_yaml"},
        }
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
    chart = settings["chart"]
    values = rendered[workspace]["values"]
    assert rendered[workspace]["namespace"] == settings["namespace"]
    assert values["image"]["repository"] == chart["image"]["repository"]
    assert values["image"]["tag"] == chart["image"]["tag"]
    assert values["worker"]["concurrency"] == chart["worker"]["concurrency"]
    assert values["keda"]["maxReplicaCount"] == chart["keda"]["max_replica_count"]
    assert values["keda"]["listLength"] == chart["worker"]["concurrency"]
    assert values["resources"] == chart["resources"]
    assert values["redis"]["host"] == chart["redis"]["host"]
    assert values["redis"]["existingSecret"] == chart["redis"]["existing_secret"]
    assert values["terminationGracePeriodSeconds"] > values["worker"]["shutdownTimeoutSeconds"] + 15
    # The NetworkPolicy admits the namespace the scrape config is delivered to.
    assert values["networkPolicy"]["monitoringNamespace"] == settings["monitoring"]["namespace"]
    labels = rendered[workspace]["namespace_labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_production_rollout_outlasts_the_providers_default_timeout(
    rendered: dict[str, dict[str, Any]],
) -> None:
    """Production's 200 pods need a 30-minute Helm timeout; the provider's operation timeout is
    set above it (helm provider 3.1 would otherwise stop at 20 minutes)."""
    production = rendered["production"]
    assert production["helm_timeout_seconds"] == 1800
    assert production["operation_timeout_seconds"] >= 2 * 1800
    assert production["operation_timeout_seconds"] > 20 * 60


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
    annotations = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert ("prometheus.io/scrape" in annotations) != ("PodMonitor" in objects)
    if values["redis"]["tls"]["enabled"]:
        assert objects["ConfigMap"]["data"]["REDIS_URL"].startswith("rediss://")
    pdb = objects["PodDisruptionBudget"]["spec"]
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


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
    minimal = (
        f'{{image = {{repository = "{image["repository"]}", tag = "{image["tag"]}"}},'
        f' redis = {{host = "{chart["redis"]["host"]}"}}}}'
    )
    terraform(
        "apply", "-auto-approve", "-input=false", "-no-color", f"-var=chart={minimal}", cwd=module
    )
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


def _wrapper_plan(root: Path, workspace: str, tfvars: str) -> subprocess.CompletedProcess[str]:
    _select(root, workspace)
    (root / "workspaces" / f"{workspace}.tfvars").write_text(tfvars, encoding="utf-8")
    return terraform(
        "plan", "-input=false", "-no-color", f"-var-file=workspaces/{workspace}.tfvars",
        cwd=root, check=False,
    )  # fmt: skip


def test_annotation_job_and_pod_monitor_are_refused_together(tmp_path: Path) -> None:
    """A workspace that turns on the PodMonitor while the annotation-based scrape job is on fails
    at plan time (every rate would double); with the job off it plans."""
    root = values_wrapper_root(tmp_path)
    terraform("init", "-input=false", "-no-color", cwd=root)
    production = (WORKSPACES_DIR / "production.tfvars").read_text(encoding="utf-8")
    both = production.replace(
        "  prometheus_rule = {", "  pod_monitor = { enabled = true }\n  prometheus_rule = {"
    )
    assert both != production
    refused = _wrapper_plan(root, "production", both)
    assert refused.returncode != 0
    error = " ".join(refused.stderr.split())
    assert "both scrape the worker pods: choose one" in error, error
    only_pod_monitor = both.replace(
        'monitoring = {\n  delivery  = "secret"',
        'monitoring = {\n  enabled   = false\n  delivery  = "secret"',
    )
    assert only_pod_monitor != both
    assert _wrapper_plan(root, "production", only_pod_monitor).returncode == 0


WORKSPACE_COMMAND = re.compile(r"terraform(?: -chdir=\S+)? workspace select[^\n`&|;#]*")
WORKSPACE_DOCS = [
    REPO / "README.md",
    REPO / "justfile",
    *sorted((REPO / "docs").glob("*.md")),
    TERRAFORM / "README.md",
    *sorted(WORKSPACES_DIR.glob("*.tfvars")),
]


def _documented_selects() -> list[str]:
    found = []
    for path in WORKSPACE_DOCS:
        for match in WORKSPACE_COMMAND.finditer(path.read_text(encoding="utf-8")):
            command = match.group(0).strip().rstrip(".,)")
            # Prose that names the command, or a placeholder, is not a command to run.
            if "<" not in command and not command.endswith("select"):
                found.append(command.replace("{{ env }}", "hmg"))
    return found


def test_documented_workspace_commands_work_on_a_fresh_checkout(tmp_path: Path) -> None:
    """Every `terraform workspace select` the docs, settings files and justfile show succeeds in a
    freshly initialised root that has no workspace yet (a plain `select` fails there)."""
    commands = _documented_selects()
    assert len(commands) >= 5, commands
    for index, command in enumerate(commands):
        root = values_wrapper_root(tmp_path / str(index))
        terraform("init", "-input=false", "-no-color", cwd=root)
        args = command.split()[1:]
        args = [a for a in args if not a.startswith("-chdir=")]
        proc = terraform(*args, "-no-color", cwd=root, check=False)
        assert proc.returncode == 0, f"{command}: {proc.stderr}"
