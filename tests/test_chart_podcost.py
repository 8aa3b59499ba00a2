"""The chart's opt-in pod deletion cost (`podDeletionCost.*`), rendered by the real helm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart_helpers import (
    CHART,
    NAMESPACE,
    by_kind,
    checkov,
    container_env,
    helm,
    one,
    pod_environment,
    render,
)
from workflow_worker.settings import Settings

ON = "podDeletionCost.enabled=true"
KUBE_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def _pod(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def test_off_by_default() -> None:
    """By default no Role is rendered, no token is mounted, and the worker is not told to patch."""
    manifests = render()
    assert not by_kind(manifests, "Role")
    assert not by_kind(manifests, "RoleBinding")
    assert _pod(manifests)["automountServiceAccountToken"] is False
    assert "POD_NAME" not in container_env(one(manifests, "Deployment"))
    assert not any(k.startswith("WORKER_POD_") for k in one(manifests, "ConfigMap")["data"])


def test_role_allows_only_patching_pods_in_the_release_namespace() -> None:
    """The Role grants `patch` on `pods` (no other verb, resource or subresource) in the release's
    namespace, and is bound to exactly the ServiceAccount the pods run as."""
    manifests = render(sets=[ON])
    role, binding = one(manifests, "Role"), one(manifests, "RoleBinding")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": _pod(manifests)["serviceAccountName"],
            "namespace": NAMESPACE,
        }
    ]
    assert not by_kind(manifests, "ClusterRole")
    assert not by_kind(manifests, "ClusterRoleBinding")


def test_pod_gets_token_identity_and_settings_the_worker_accepts(tmp_path: Path) -> None:
    """Enabled, the pod mounts its token and learns its name and namespace from the downward API,
    next to the Redis password and the user's own `env`; the environment the kubelet would build
    from the rendered objects is one the worker's settings accept with the feature on."""
    sets = [
        ON,
        "podDeletionCost.intervalSeconds=45",
        "redis.existingSecret=r",
        "env[0].name=API_TOKEN",
        "env[0].valueFrom.secretKeyRef.name=my-app",
        "env[0].valueFrom.secretKeyRef.key=token",
    ]
    manifests = render(sets=sets)
    pod = _pod(manifests)
    assert pod["automountServiceAccountToken"] is True
    env = container_env(one(manifests, "Deployment"))
    assert set(env) == {"REDIS_PASSWORD", "POD_NAME", "POD_NAMESPACE", "API_TOKEN"}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    fields = {"metadata.name": "wf-abc", "metadata.namespace": NAMESPACE}
    secrets = {"r": {"redis-password": "pw"}, "my-app": {"token": "t"}}
    kubelet = pod_environment(manifests, secrets, tmp_path, fields)
    # Kubernetes sets the API server's address in every pod.
    settings = Settings.from_env({**kubelet, "KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert settings.pod_deletion_cost is True
    assert settings.pod_deletion_cost_interval == 45
    assert (settings.pod_name, settings.pod_namespace) == ("wf-abc", NAMESPACE)
    assert (kubelet["API_TOKEN"], kubelet["REDIS_PASSWORD"]) == ("t", "pw")


def test_service_account_stays_without_automount() -> None:
    """Only the worker pods get the token (pod-level setting), not every user of the account."""
    account = one(render(sets=[ON]), "ServiceAccount")
    assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_enabled_objects_validate_strictly(version: str) -> None:
    """With the feature and the NetworkPolicy on, every built-in object validates strictly."""
    manifests = render(sets=[ON, "networkPolicy.enabled=true"])
    kinds = {m["kind"] for m in manifests}
    assert {"Role", "RoleBinding", "NetworkPolicy"} <= kinds
    for manifest in manifests:
        if manifest["apiVersion"].startswith(("keda.sh", "monitoring.coreos.com")):
            continue
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{manifest['kind']} {'.'.join(map(str, exc.path))}: {exc.message}")


def test_network_policy_lets_the_pods_reach_the_api_server() -> None:
    """With a NetworkPolicy, the API server's range is reachable on 443 and 6443, and only when
    the feature is on."""
    sets = ["networkPolicy.enabled=true", "podDeletionCost.apiServerCidr=172.20.0.0/16"]
    egress = one(render(sets=[ON, *sets]), "NetworkPolicy")["spec"]["egress"]
    api = [rule for rule in egress if rule.get("to") == [{"ipBlock": {"cidr": "172.20.0.0/16"}}]]
    assert len(api) == 1
    assert sorted(p["port"] for p in api[0]["ports"]) == [443, 6443]
    without = one(render(sets=sets), "NetworkPolicy")["spec"]["egress"]
    assert not any(6443 in [p.get("port") for p in r.get("ports", [])] for r in without)


def test_refuses_the_namespace_default_service_account() -> None:
    """Granting patch on pods to the namespace's `default` account (used by other workloads) is
    refused at render time; a named account of the user's is accepted."""
    result = helm("template", "wf", str(CHART), f"--set={ON}", "--set=serviceAccount.create=false")
    assert result.returncode != 0
    assert "podDeletionCost.enabled" in result.stderr
    named = render(sets=[ON, "serviceAccount.create=false", "serviceAccount.name=workers"])
    assert one(named, "RoleBinding")["subjects"][0]["name"] == "workers"


@pytest.mark.parametrize(
    "setting",
    [
        "podDeletionCost.intervalSeconds=0",
        "podDeletionCost.enable=true",
        "podDeletionCost.apiServerCidr=any",
    ],
)
def test_schema_rejects_bad_values(setting: str) -> None:
    """An interval below one second, a misspelled key or a non-CIDR range fail helm template."""
    result = helm("template", "wf", str(CHART), f"--set={setting}")
    assert result.returncode != 0
    assert "schema" in result.stderr


def test_long_release_names_keep_rbac_names_short() -> None:
    """The Role and RoleBinding names stay within 63 characters for a long release name."""
    manifests = render(release="r" * 53, sets=[ON])
    for kind in ("Role", "RoleBinding"):
        assert len(one(manifests, kind)["metadata"]["name"]) <= 63


def test_checkov_passes_with_the_feature_on(tmp_path: Path) -> None:
    """checkov finds no failed check with the feature on (the token mount is a justified skip)."""
    manifests = render(sets=[ON, "networkPolicy.enabled=true"])
    (tmp_path / "rendered.yaml").write_text(yaml.safe_dump_all(manifests))
    run = checkov(tmp_path, quiet=False)
    reports, failed = run.reports, run.failed
    assert failed == []
    skipped = {c["check_id"] for r in reports for c in r["results"].get("skipped_checks", [])}
    assert "CKV_K8S_38" in skipped
