"""The chart's optional job console: rendered by the real helm binary, checked by helm lint,
kubernetes-validate and checkov, and by assertions on what the pod gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart_helpers import CHART, by_kind, checkov, helm, render

KUBE_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
CONSOLE: dict[str, Any] = {
    "console": {"enabled": True, "existingSecret": "wf-console", "readOnly": True},
    "redis": {"existingSecret": "redis"},
}
CONSOLE_WITH_POLICY = {**CONSOLE, "networkPolicy": {"enabled": True}}


def _values(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "console-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _rendered(tmp_path: Path, values: dict[str, Any] = CONSOLE) -> list[dict[str, Any]]:
    return render("wf", [_values(tmp_path, values)])


def _named(manifests: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    (found,) = [m for m in by_kind(manifests, kind) if m["metadata"]["name"].endswith(suffix)]
    return found


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_off_by_default() -> None:
    """The default values render no console objects."""
    manifests = render("wf")
    assert not [m for m in manifests if m["metadata"]["name"].endswith("-console")]


def test_console_pod_is_locked_down_like_the_workers(tmp_path: Path) -> None:
    """One replica running `console`, with the workers' pod and container security contexts,
    no API token, a writable /tmp only, and probes on its named port."""
    manifests = _rendered(tmp_path)
    worker = _named(manifests, "Deployment", "workflow-worker")["spec"]["template"]["spec"]
    deployment = _named(manifests, "Deployment", "-console")
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["console"]
    assert pod["securityContext"] == worker["securityContext"]
    assert container["securityContext"] == worker["containers"][0]["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert container["ports"] == [{"name": "http", "containerPort": 8090, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_credentials_come_only_from_the_existing_secret(tmp_path: Path) -> None:
    """The token and the Redis password reach the console by secretKeyRef; no Secret and no
    credential value is rendered; read-only mode and the redaction list are passed on."""
    manifests = _rendered(tmp_path)
    assert not by_kind(manifests, "Secret")
    container = _named(manifests, "Deployment", "-console")["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {item["name"]: item for item in container["env"]}
    assert env["WORKER_CONSOLE_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "wf-console",
        "key": "token",
    }
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "redis"
    assert "WORKER_CONSOLE_USERNAME" not in env
    assert env["WORKER_CONSOLE_READ_ONLY"]["value"] == "1"
    assert env["WORKER_CONSOLE_REDACT"]["value"].startswith("password,")
    basic = {
        "console": {
            "enabled": True,
            "existingSecret": "wf-console",
            "tokenKey": "",
            "usernameKey": "user",
            "passwordKey": "pass",
        }
    }
    container = _named(_rendered(tmp_path, basic), "Deployment", "-console")["spec"]["template"][
        "spec"
    ]["containers"][0]
    names = {item["name"]: item for item in container["env"]}
    assert "WORKER_CONSOLE_TOKEN" not in names
    assert names["WORKER_CONSOLE_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "pass"
    assert names["WORKER_CONSOLE_READ_ONLY"]["value"] == "0"


def test_services_select_only_their_own_pods(tmp_path: Path) -> None:
    """The console's Service selects the console pod and not the workers; the workers'
    Deployment, Service and PodDisruptionBudget do not select the console pod."""
    manifests = _rendered(tmp_path)
    console_pod = _named(manifests, "Deployment", "-console")["spec"]["template"]["metadata"]
    worker_pod = _named(manifests, "Deployment", "workflow-worker")["spec"]["template"]["metadata"]
    console_service = _named(manifests, "Service", "-console")
    assert console_service["spec"]["ports"][0]["targetPort"] == "http"
    assert _matches(console_service["spec"]["selector"], console_pod["labels"])
    assert not _matches(console_service["spec"]["selector"], worker_pod["labels"])
    selectors = [
        _named(manifests, "Service", "workflow-worker")["spec"]["selector"],
        _named(manifests, "Deployment", "workflow-worker")["spec"]["selector"]["matchLabels"],
        *(p["spec"]["selector"]["matchLabels"] for p in by_kind(manifests, "PodDisruptionBudget")),
    ]
    for selector in selectors:
        assert _matches(selector, worker_pod["labels"])
        assert not _matches(selector, console_pod["labels"])


def test_network_policy_keeps_the_console_to_its_port_and_redis(tmp_path: Path) -> None:
    """With networkPolicy.enabled the console pod gets its own policy: in, only its port; out,
    only Redis and DNS; the workers' policy does not select it."""
    values = {**CONSOLE, "networkPolicy": {"enabled": True, "redisCidr": "10.1.0.0/16"}}
    manifests = _rendered(tmp_path, values)
    console_pod = _named(manifests, "Deployment", "-console")["spec"]["template"]["metadata"]
    policy = _named(manifests, "NetworkPolicy", "-console")["spec"]
    assert _matches(policy["podSelector"]["matchLabels"], console_pod["labels"])
    assert policy["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    redis_rule, dns_rule = policy["egress"]
    assert redis_rule["to"] == [{"ipBlock": {"cidr": "10.1.0.0/16"}}]
    assert redis_rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    assert {p["port"] for p in dns_rule["ports"]} == {53}
    worker_policy = _named(manifests, "NetworkPolicy", "workflow-worker")["spec"]
    assert not _matches(worker_policy["podSelector"]["matchLabels"], console_pod["labels"])


@pytest.mark.parametrize(
    ("console", "message"),
    [
        ({"enabled": True}, "console.existingSecret"),
        ({"enabled": True, "existingSecret": "s", "tokenKey": ""}, "console.tokenKey"),
        (
            {"enabled": True, "existingSecret": "s", "usernameKey": "u"},
            "console.usernameKey and console.passwordKey",
        ),
        ({"enabled": True, "existingSecret": "s", "password": "x"}, "password"),
    ],
)
def test_render_refuses_a_console_without_credentials(
    tmp_path: Path, console: dict[str, Any], message: str
) -> None:
    """Enabled without a Secret, without any key in it, with half a basic pair, or with a
    credential value in the values: helm template fails and says which setting."""
    result = helm("template", "wf", str(CHART), "-f", str(_values(tmp_path, {"console": console})))
    assert result.returncode != 0
    assert message in result.stderr


def test_helm_lint_strict_and_kubernetes_validate(tmp_path: Path) -> None:
    """`helm lint --strict` passes with the console (and its NetworkPolicy) on, and every
    built-in object validates strictly against the Kubernetes schemas."""
    values = _values(tmp_path, CONSOLE_WITH_POLICY)
    result = helm("lint", "--strict", str(CHART), "-f", str(values))
    assert result.returncode == 0, result.stdout + result.stderr
    builtin = [m for m in render("wf", [values]) if "keda" not in m["apiVersion"]]
    for version in KUBE_VERSIONS:
        for manifest in builtin:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{manifest['kind']} {'.'.join(map(str, exc.path))}: {exc.message}")


def test_checkov_passes_on_the_console(tmp_path: Path) -> None:
    """checkov, with the chart's own skips, finds no failed check in the console's objects."""
    folder = tmp_path / "rendered"
    folder.mkdir()
    rendered = _rendered(tmp_path, CONSOLE_WITH_POLICY)
    console = [m for m in rendered if m["metadata"]["name"].endswith("-console")]
    assert len(console) == 3
    (folder / "console.yaml").write_text(yaml.safe_dump_all(console))
    run = checkov(folder)
    reports, failed = run.reports, run.failed
    assert failed == []
    assert reports[0]["summary"]["passed"] > 50
