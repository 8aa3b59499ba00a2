"""The chart for platform teams: security contexts, probes, scheduling, extra volumes and env,
image digests, KEDA fallback, Pod Security, NOTES, per-namespace alert rules and versioning.
Rendered by the real helm binary; checked against the Kubernetes and CRD schemas and promtool."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart_helpers import (
    CHART,
    SCENARIOS,
    SCHEMAS,
    by_kind,
    chart_digest,
    container_env,
    helm,
    notes,
    one,
    recorded_versions,
    render,
    render_scenario,
)
from tests.prom_helpers import RULES, RULES_TEST, promtool

Manifest = dict[str, Any]
KUBE_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
DIGEST = "sha256:" + "0123456789abcdef" * 4
PLATFORM_VALUES: dict[str, Any] = {
    "image": {"digest": DIGEST},
    "priorityClassName": "workers-high",
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
        },
        {
            "maxSkew": 2,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"team": "flows"}},
        },
    ],
    "extraVolumes": [{"name": "client-cert", "secret": {"secretName": "redis-client"}}],
    "extraVolumeMounts": [
        {"name": "client-cert", "mountPath": "/etc/redis-client", "readOnly": True}
    ],
    "env": [
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "my-app", "key": "token"}}},
        {"name": "REDIS_TLS_CERT_FILE", "value": "/etc/redis-client/tls.crt"},
    ],
    "envFrom": [{"secretRef": {"name": "my-app-secrets"}}],
    "keda": {"fallback": {"enabled": True, "replicas": 4}},
    "probes": {"liveness": {"periodSeconds": 20}, "startup": {"failureThreshold": 90}},
}
OPENSHIFT_SETS = [
    "podSecurityContext.runAsUser=null",
    "podSecurityContext.runAsGroup=null",
    "podSecurityContext.fsGroup=null",
    "containerSecurityContext.runAsUser=null",
    "containerSecurityContext.runAsGroup=null",
]


def _render_values(values: dict[str, Any], tmp_path: Path, *sets: str) -> list[Manifest]:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return render(values=[path], sets=sets)


def _pod(manifests: list[Manifest] | tuple[Manifest, ...]) -> dict[str, Any]:
    spec: dict[str, Any] = one(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def _validate_builtin(manifests: list[Manifest]) -> None:
    for manifest in manifests:
        if manifest["apiVersion"].endswith(("keda.sh/v1alpha1", "coreos.com/v1")):
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)


# --- Pod Security ---------------------------------------------------------------------------------

_RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip


def _container_violations(container: dict[str, Any], pod_ctx: dict[str, Any]) -> list[str]:
    ctx = container.get("securityContext", {})
    name = container["name"]
    capabilities = ctx.get("capabilities", {})
    seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {})).get("type")
    checks = {
        "privileged": bool(ctx.get("privileged")),
        "allowPrivilegeEscalation not false": ctx.get("allowPrivilegeEscalation") is not False,
        "runAsNonRoot not true": not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")),
        "runAsUser 0": ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0,
        f"seccomp {seccomp}": seccomp not in ("RuntimeDefault", "Localhost"),
        "capabilities not dropped": "ALL" not in capabilities.get("drop", []),
        "capabilities added": bool(set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}),
    }
    return [f"{name}: {what}" for what, failed in checks.items() if failed]


def _restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What the `restricted` Pod Security Standard (Kubernetes docs, "Pod Security Standards")
    refuses in a pod spec: host namespaces, privileged or escalating containers, root, missing
    seccomp, added capabilities other than NET_BIND_SERVICE, and non-ephemeral volume types."""
    found = []
    if any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")):
        found.append("host namespace")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            found.append(f"volume type {kinds}")
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        found += _container_violations(container, pod.get("securityContext", {}))
    return found


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pods_meet_the_restricted_pod_security_standard(scenario: str) -> None:
    """The worker pod and the helm test pod pass every `restricted` Pod Security rule, so the
    chart installs in a namespace labelled pod-security.kubernetes.io/enforce=restricted."""
    manifests = render_scenario(scenario)
    for pod in (_pod(manifests), one(manifests, "Pod")["spec"]):
        assert _restricted_violations(pod) == []


def test_pod_security_check_has_teeth() -> None:
    """The restricted check above flags a root, privileged pod with a hostPath volume."""
    pod = {
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"privileged": True, "runAsUser": 0}}],
    }
    assert len(_restricted_violations(pod)) >= 6


def test_security_contexts_can_leave_uids_to_the_platform() -> None:
    """With the uid and gid keys set to null (OpenShift's restricted SCC assigns them), no pod or
    container pins a uid, the pods still refuse root, and they stay valid and restricted."""
    manifests = render(sets=OPENSHIFT_SETS)
    pods = [_pod(manifests), one(manifests, "Pod")["spec"]]
    for pod in pods:
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        for container in pod["containers"]:
            ctx = container["securityContext"]
            assert not {"runAsUser", "runAsGroup"} & set(ctx), ctx
            assert ctx["runAsNonRoot"] is True
            assert ctx["readOnlyRootFilesystem"] is True
        assert _restricted_violations(pod) == []
    _validate_builtin(manifests)


# --- probes, scheduling, volumes, env ----------------------------------------------------------


def test_startup_probe_guards_slow_starts_and_probes_are_tunable() -> None:
    """By default a startup probe on /healthz gives 60 s to start; probe timings come from
    values, and the startup probe can be switched off."""
    container = _pod(render())["containers"][0]
    assert container["startupProbe"] == {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 2,
        "timeoutSeconds": 3,
        "failureThreshold": 30,
    }
    assert container["livenessProbe"]["initialDelaySeconds"] == 5
    tuned = _pod(render(sets=["probes.startup.enabled=false", "probes.readiness.periodSeconds=7"]))
    assert "startupProbe" not in tuned["containers"][0]
    assert tuned["containers"][0]["readinessProbe"]["periodSeconds"] == 7
    assert tuned["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_platform_values_reach_the_pod(tmp_path: Path) -> None:
    """Digest, PriorityClass, topology spread, extra volumes and mounts, env from Secrets,
    envFrom and probe timings all reach the pod, which stays valid for the Kubernetes schemas."""
    manifests = _render_values(PLATFORM_VALUES, tmp_path)
    _validate_builtin(manifests)
    pod = _pod(manifests)
    container = pod["containers"][0]
    deployment = one(manifests, "Deployment")
    assert container["image"] == f"ghcr.io/example/workflow-worker:0.1.0@{DIGEST}"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == "0.1.0"
    assert pod["priorityClassName"] == "workers-high"
    zone, host = pod["topologySpreadConstraints"]
    assert zone["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert host["labelSelector"] == {"matchLabels": {"team": "flows"}}
    assert {"name": "client-cert", "secret": {"secretName": "redis-client"}} in pod["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["volumeMounts"][-1]["mountPath"] == "/etc/redis-client"
    env = container_env(deployment)
    assert env["API_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "my-app", "key": "token"}
    assert env["REDIS_TLS_CERT_FILE"]["value"] == "/etc/redis-client/tls.crt"
    assert container["envFrom"][0]["configMapRef"]["name"] == deployment["metadata"]["name"]
    assert container["envFrom"][1:] == [{"secretRef": {"name": "my-app-secrets"}}]
    assert container["livenessProbe"]["periodSeconds"] == 20
    assert container["startupProbe"]["failureThreshold"] == 90
    assert _restricted_violations(pod) == []


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("image.digest=sha256:xyz", "digest"),
        ("podDisruptionBudget.unhealthyPodEvictionPolicy=Sometimes", "unhealthyPodEvictionPolicy"),
        ("keda.fallback.behavior=whatever", "behavior"),
        ("probes.liveness.periodSeconds=0", "periodSeconds"),
    ],
)
def test_schema_rejects_bad_platform_values(setting: str, message: str) -> None:
    """A malformed digest, an unknown eviction policy or fallback behavior, or a zero probe
    period fail `helm template` with a schema error naming the key."""
    result = helm("template", "wf", str(CHART), f"--set={setting}")
    assert result.returncode != 0
    assert "schema" in result.stderr
    assert message in result.stderr


# --- KEDA fallback --------------------------------------------------------------------------------


def test_keda_fallback_is_rendered_and_valid(tmp_path: Path) -> None:
    """keda.fallback renders spec.fallback, which the ScaledObject CRD schema accepts; it is
    absent by default."""
    assert "fallback" not in one(render(), "ScaledObject")["spec"]
    scaled = one(_render_values(PLATFORM_VALUES, tmp_path), "ScaledObject")
    assert scaled["spec"]["fallback"] == {
        "failureThreshold": 3,
        "replicas": 4,
        "behavior": "currentReplicasIfHigher",
    }
    schema = json.loads((SCHEMAS / "scaledobject_v1alpha1.json").read_text())
    jsonschema.Draft7Validator(schema).validate(scaled)


def test_keda_fallback_above_the_maximum_is_refused() -> None:
    """Fallback replicas above keda.maxReplicaCount fail the render with the fix."""
    result = helm(
        "template", "wf", str(CHART), "--set=keda.fallback.enabled=true",
        "--set=keda.fallback.replicas=50", "--set=keda.maxReplicaCount=20",
    )  # fmt: skip
    assert result.returncode != 0
    assert "keda.fallback.replicas (50) must not exceed keda.maxReplicaCount (20)" in result.stderr


# --- Sentinel credentials -------------------------------------------------------------------------


def test_sentinel_password_reaches_the_worker_and_keda_from_one_secret() -> None:
    """With redis.sentinel.passwordFromSecret the worker gets REDIS_SENTINEL_PASSWORD from the
    same Secret key as KEDA's sentinelPassword; a Sentinel user goes to both by environment."""
    manifests = render(
        sets=[
            "redis.mode=sentinel", "redis.existingSecret=redis-auth",
            "redis.sentinel.passwordFromSecret=true", "redis.sentinel.username=sentinel-reader",
            "redis.tls.enabled=true", "redis.tls.caSecret=redis-ca",
        ]
    )  # fmt: skip
    env = container_env(one(manifests, "Deployment"))
    ref = env["REDIS_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    auth = {
        r["parameter"]: r
        for r in one(manifests, "TriggerAuthentication")["spec"]["secretTargetRef"]
    }
    assert (auth["sentinelPassword"]["name"], auth["sentinelPassword"]["key"]) == (
        ref["name"],
        ref["key"],
    )
    config = one(manifests, "ConfigMap")["data"]
    assert config["REDIS_SENTINEL_USERNAME"] == "sentinel-reader"
    assert config["REDIS_URL"].startswith("rediss://")
    for trigger in one(manifests, "ScaledObject")["spec"]["triggers"]:
        assert trigger["metadata"]["sentinelUsernameFromEnv"] == "REDIS_SENTINEL_USERNAME"
        assert trigger["metadata"]["enableTLS"] == "true"
    plain = container_env(one(render(sets=["redis.existingSecret=redis-auth"]), "Deployment"))
    assert "REDIS_SENTINEL_PASSWORD" not in plain


# --- NOTES ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sets", "steps"), [([], 3), (["keda.assumeInstalled=true"], 4)])
def test_notes_number_their_steps_consecutively(sets: list[str], steps: int) -> None:
    """NOTES.txt numbers its next steps 1, 2, 3, ... whether or not the KEDA step is shown."""
    numbers = [int(n) for n in re.findall(r"^(\d+)\. ", notes(*sets), re.MULTILINE)]
    assert numbers == list(range(1, steps + 1))


# --- alert rules per namespace --------------------------------------------------------------------


def _test_namespace() -> str:
    """The namespace most rule tests run in: the release's, for these tests. (Others appear in
    cases about a second environment, and KEDA's own namespace.)"""
    found: Counter[str] = Counter(re.findall(r'namespace="([^"]+)"', RULES_TEST.read_text()))
    return found.most_common(1)[0][0]


def _in(namespace: str, labels: dict[str, Any]) -> bool:
    return bool(labels.get("namespace", namespace) == namespace)


def _two_namespace_tests(rules_file: str, namespace: str) -> dict[str, Any]:
    """The rule unit tests with every input series copied into a second namespace. Alert cases
    whose alerts carry no namespace label are left out: no single release owns them."""
    doc: dict[str, Any] = yaml.safe_load(RULES_TEST.read_text())
    doc["rule_files"] = [rules_file]
    for test in doc["tests"]:
        series = test.get("input_series", [])
        series += [
            {
                **s,
                "series": s["series"].replace(f'namespace="{namespace}"', 'namespace="elsewhere"'),
            }
            for s in series
            if f'namespace="{namespace}"' in s["series"]
        ]
        # A release owns only its namespace's alerts: cases about another environment, or
        # alerts with no namespace at all, are not its to pass.
        test["alert_rule_test"] = [
            case
            for case in test.get("alert_rule_test", [])
            if all(
                "namespace" in alert.get("exp_labels", {}) and _in(namespace, alert["exp_labels"])
                for alert in case["exp_alerts"]
            )
        ]
        test["promql_expr_test"] = [
            case
            for case in test.get("promql_expr_test", [])
            if all(
                _in(namespace, _labels(sample.get("labels", "")))
                for sample in case.get("exp_samples", [])
            )
        ]
    return doc


def _labels(text: str) -> dict[str, Any]:
    return dict(re.findall(r'(\w+)="([^"]*)"', text))


def _promtool_test(tmp_path: Path, groups: list[dict[str, Any]], namespace: str) -> str:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "tests.yml").write_text(
        yaml.safe_dump(_two_namespace_tests("rules.yml", namespace))
    )
    result = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    return result.stdout + result.stderr


def test_release_rules_ignore_other_namespaces(tmp_path: Path) -> None:
    """The PrometheusRule of a release in one namespace passes the rule unit tests even when the
    same series also exist in another namespace (another release on the same Prometheus)."""
    namespace = _test_namespace()
    rule = one(render(namespace=namespace, sets=["prometheusRule.enabled=true"]), "PrometheusRule")
    output = _promtool_test(tmp_path, rule["spec"]["groups"], namespace)
    assert "SUCCESS" in output, output


def test_unscoped_rules_fail_with_a_second_namespace(tmp_path: Path) -> None:
    """The rules as written (not limited to a namespace) fail the same two-namespace tests: the
    check above would catch a PrometheusRule that is not scoped."""
    namespace = _test_namespace()
    groups = yaml.safe_load(RULES.read_text())["groups"]
    output = _promtool_test(tmp_path, groups, namespace)
    assert "FAILED" in output, output


def test_every_rule_expression_is_scoped() -> None:
    """Every series selector in the rendered rules names the release's namespace."""
    rule = one(render(sets=["prometheusRule.enabled=true"]), "PrometheusRule")
    selector = re.compile(r"\b(workflow_\w*|[A-Za-z_]\w*:[\w:]*)(\{[^}]*\})?")
    for group in rule["spec"]["groups"]:
        for item in group["rules"]:
            for match in selector.finditer(item["expr"]):
                assert 'namespace="workflows"' in (match.group(2) or ""), item["expr"]


# --- chart version --------------------------------------------------------------------------------


def test_chart_changes_come_with_a_version_bump() -> None:
    """The packaged chart files are recorded under the version in Chart.yaml; a change without a
    bump fails here (record a new version with `python -m tests.chart_helpers record-version`)."""
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    recorded = recorded_versions()
    versions = [v for v, _ in recorded]
    assert len(set(versions)) == len(versions), "a version is recorded twice"
    as_tuples = [tuple(int(part) for part in v.split(".")) for v in versions]
    assert as_tuples == sorted(as_tuples), "versions must increase"
    assert recorded[-1] == (version, chart_digest()), (
        f"helm/workflow-worker changed but Chart.yaml still says {version}: bump it and run"
        " `python -m tests.chart_helpers record-version`"
    )


def test_version_check_notices_a_changed_template(tmp_path: Path) -> None:
    """Changing one template changes the digest; changing a ci/ scenario (not packaged) does not."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    before = chart_digest(copy)
    (copy / "ci" / "default-values.yaml").write_text("# edited\n")
    assert chart_digest(copy) == before
    (copy / "templates" / "service.yaml").write_text("# edited\n")
    assert chart_digest(copy) != before


def test_builtin_objects_of_every_scenario_name_their_version() -> None:
    """Every object's app.kubernetes.io/version label equals the rendered image tag."""
    for scenario in SCENARIOS:
        for manifest in by_kind(render_scenario(scenario), "Deployment"):
            image = manifest["spec"]["template"]["spec"]["containers"][0]["image"]
            tag = image.split("@")[0].rsplit(":", 1)[1]
            assert manifest["metadata"]["labels"]["app.kubernetes.io/version"] == tag
