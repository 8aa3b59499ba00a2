"""The Helm chart, rendered by the real helm binary and checked by schemas and assertions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart_helpers import (
    CHART,
    NAMESPACE,
    SCENARIOS,
    SCHEMAS,
    by_kind,
    container_env,
    helm,
    one,
    render,
    render_scenario,
    scenario_values,
)
from workflow_worker.engine.keys import QueueKeys

KUBE_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject_v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication_v1alpha1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule_v1.json",
}
KEDA_SCENARIOS = tuple(s for s in SCENARIOS if s != "no-keda")
TRIGGER_TYPES = {"standalone": "redis", "sentinel": "redis-sentinel", "cluster": "redis-cluster"}


def _values(scenario: str) -> dict[str, Any]:
    """The chart defaults with the scenario's file merged over them (two levels are enough here)."""
    merged: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    for key, value in yaml.safe_load(scenario_values(scenario).read_text()).items():
        if isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _pod_spec(manifests: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    spec: dict[str, Any] = one(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def _config(manifests: tuple[dict[str, Any], ...]) -> dict[str, str]:
    data: dict[str, str] = one(manifests, "ConfigMap")["data"]
    return data


def _is_custom(manifest: dict[str, Any]) -> bool:
    return (manifest["apiVersion"], manifest["kind"]) in CRD_SCHEMAS


# --- engines: lint, Kubernetes schemas, CRD schemas -------------------------------------------


@pytest.mark.parametrize("scenario", [*SCENARIOS, None])
def test_helm_lint_strict(scenario: str | None) -> None:
    """`helm lint --strict` passes for the chart defaults and every ci/ scenario."""
    args = ["lint", "--strict", str(CHART)]
    if scenario is not None:
        args += ["-f", str(scenario_values(scenario))]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_scenario_exists() -> None:
    """The ci/ folder holds the five topology scenarios and Sentinel over TLS."""
    assert set(SCENARIOS) == {"default", "no-keda", "sentinel", "cluster", "tls", "sentinel-tls"}


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_builtin_objects_validate_strictly(scenario: str, version: str) -> None:
    """Every built-in object rendered for a scenario passes kubernetes-validate in strict mode."""
    builtin = [m for m in render_scenario(scenario) if not _is_custom(m)]
    assert {"Deployment", "ConfigMap", "Service"} <= {m["kind"] for m in builtin}
    for manifest in builtin:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{manifest['kind']} {'.'.join(map(str, exc.path))}: {exc.message}")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_custom_resources_match_crd_schemas(scenario: str) -> None:
    """KEDA and prometheus-operator objects validate against their CRD schemas."""
    custom = [
        m
        for m in render_scenario(scenario)
        if m["apiVersion"].endswith(("keda.sh/v1alpha1", "coreos.com/v1"))
    ]
    for manifest in custom:
        schema_file = CRD_SCHEMAS.get((manifest["apiVersion"], manifest["kind"]))
        assert schema_file is not None, f"no CRD schema for {manifest['kind']}"
        schema = json.loads((SCHEMAS / schema_file).read_text())
        jsonschema.Draft7Validator(schema).validate(manifest)


def test_scenarios_cover_every_custom_resource() -> None:
    """Across the scenarios, every custom resource kind of the chart is rendered and validated."""
    kinds = {(m["apiVersion"], m["kind"]) for s in SCENARIOS for m in render_scenario(s)}
    assert set(CRD_SCHEMAS) <= kinds


def test_crd_schema_rejects_integer_trigger_metadata() -> None:
    """The ScaledObject schema used here really rejects non-string trigger metadata."""
    scaled = json.loads(json.dumps(one(render_scenario("default"), "ScaledObject")))
    scaled["spec"]["triggers"][0]["metadata"]["listLength"] = 50
    schema = json.loads((SCHEMAS / "scaledobject_v1alpha1.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(scaled)


# --- KEDA -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", KEDA_SCENARIOS)
def test_keda_triggers_watch_queue_and_processing_hash(scenario: str) -> None:
    """The two triggers watch the queue list and its `{queue}:processing` hash, string metadata."""
    values = _values(scenario)
    queue = values["worker"]["queue"]
    triggers = one(render_scenario(scenario), "ScaledObject")["spec"]["triggers"]
    assert [t["name"] for t in triggers] == ["queued", "inflight"]
    assert triggers[0]["metadata"]["listName"] == queue
    assert triggers[1]["metadata"]["listName"] == QueueKeys.for_queue(queue).processing
    target = values["keda"]["listLength"] or values["worker"]["concurrency"]
    for trigger in triggers:
        assert trigger["type"] == TRIGGER_TYPES[values["redis"]["mode"]]
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), trigger["metadata"]
        assert trigger["metadata"]["listLength"] == str(target)


@pytest.mark.parametrize(
    "queue", ["workflow:queue", "{jobs}:high", "a{}b{c}", "x{y", "}{z}", "{}", "pre{tag}post"]
)
def test_processing_key_helper_matches_worker_keys(queue: str, tmp_path: Path) -> None:
    """The chart derives the in-flight key exactly as the engine's keys module does, hash tags
    included."""
    values = tmp_path / "queue.yaml"
    values.write_text(yaml.safe_dump({"worker": {"queue": queue}}))
    manifests = render(values=[values])
    listed = [t["metadata"]["listName"] for t in one(manifests, "ScaledObject")["spec"]["triggers"]]
    assert listed == [queue, QueueKeys.for_queue(queue).processing]


def test_keda_sentinel_and_cluster_metadata() -> None:
    """Sentinel triggers name the master and Sentinel address; cluster triggers have no database."""
    sentinel = one(render_scenario("sentinel"), "ScaledObject")["spec"]["triggers"][0]["metadata"]
    assert sentinel["addresses"] == "redis-sentinel.data.svc:26379"
    assert sentinel["sentinelMaster"] == "primary"
    assert sentinel["databaseIndex"] == "2"
    assert sentinel["usernameFromEnv"] == "REDIS_USERNAME"
    cluster = one(render_scenario("cluster"), "ScaledObject")["spec"]["triggers"][0]["metadata"]
    assert cluster["addresses"] == "redis-cluster.data.svc:6379"
    assert "databaseIndex" not in cluster
    assert "address" not in cluster
    default = one(render_scenario("default"), "ScaledObject")["spec"]["triggers"][0]["metadata"]
    assert default["address"] == "redis-master:6379"


@pytest.mark.parametrize("scenario", KEDA_SCENARIOS)
def test_keda_scales_in_slowly_from_at_least_one(scenario: str) -> None:
    """The ScaledObject keeps at least one pod and removes at most one pod per two minutes."""
    spec = one(render_scenario(scenario), "ScaledObject")["spec"]
    assert spec["minReplicaCount"] >= 1
    assert (
        spec["scaleTargetRef"]["name"]
        == one(render_scenario(scenario), "Deployment")["metadata"]["name"]
    )
    scale_down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= 300
    assert scale_down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]


@pytest.mark.parametrize("scenario", KEDA_SCENARIOS)
def test_keda_sums_waiting_and_running_jobs(scenario: str) -> None:
    """By default the replica target is (queued + inflight) / listLength, via scalingModifiers."""
    values = _values(scenario)
    spec = one(render_scenario(scenario), "ScaledObject")["spec"]
    target = str(values["keda"]["listLength"] or values["worker"]["concurrency"])
    assert spec["advanced"]["scalingModifiers"] == {
        "formula": "queued + inflight",
        "target": target,
        "metricType": "AverageValue",
    }


@pytest.mark.parametrize("setting", ["keda.combineTriggers=max", "keda.inflightTrigger=false"])
def test_keda_without_formula(setting: str) -> None:
    """With `max`, or without the in-flight trigger, no formula is set (plain HPA rules apply)."""
    spec = one(render(sets=[setting]), "ScaledObject")["spec"]
    assert "scalingModifiers" not in spec["advanced"]
    assert len(spec["triggers"]) == (2 if setting.endswith("max") else 1)


@pytest.mark.parametrize("scenario", KEDA_SCENARIOS)
def test_keda_shares_the_workers_secret(scenario: str) -> None:
    """The TriggerAuthentication reads the password from the same Secret key as the worker's env."""
    manifests = render_scenario(scenario)
    secret_ref = container_env(one(manifests, "Deployment"))["REDIS_PASSWORD"]["valueFrom"][
        "secretKeyRef"
    ]
    auth = one(manifests, "TriggerAuthentication")
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert (refs["password"]["name"], refs["password"]["key"]) == (
        secret_ref["name"],
        secret_ref["key"],
    )
    assert "tls" not in refs
    for trigger in one(manifests, "ScaledObject")["spec"]["triggers"]:
        assert trigger["authenticationRef"] == {
            "name": auth["metadata"]["name"],
            "kind": "TriggerAuthentication",
        }


def test_no_keda_api_falls_back_to_fixed_replicas() -> None:
    """Without the keda.sh API (or assumeInstalled), no KEDA object renders and replicas is set."""
    plain = render(values=[scenario_values("default")], api_versions=False)
    assert not by_kind(plain, "ScaledObject")
    assert not by_kind(plain, "TriggerAuthentication")
    assert one(plain, "Deployment")["spec"]["replicas"] == 1
    assumed = render(
        values=[scenario_values("default")], sets=["keda.assumeInstalled=true"], api_versions=False
    )
    assert by_kind(assumed, "ScaledObject")
    assert "replicas" not in one(assumed, "Deployment")["spec"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_replicas_only_without_keda(scenario: str) -> None:
    """The Deployment has no `replicas` field when KEDA manages it, and `replicaCount` otherwise."""
    manifests = render_scenario(scenario)
    spec = one(manifests, "Deployment")["spec"]
    if _values(scenario)["keda"]["enabled"]:
        assert "replicas" not in spec
    else:
        assert spec["replicas"] == _values(scenario)["replicaCount"]
        assert not by_kind(manifests, "ScaledObject")


# --- Deployment -------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_grace_period_exceeds_drain_timeout(scenario: str) -> None:
    """terminationGracePeriodSeconds leaves more than 15 s after the worker's drain timeout."""
    manifests = render_scenario(scenario)
    drain = int(_config(manifests)["WORKER_SHUTDOWN_TIMEOUT"])
    assert _pod_spec(manifests)["terminationGracePeriodSeconds"] > drain + 15


@pytest.mark.parametrize(("grace", "ok"), [(300, False), (315, False), (316, True)])
def test_render_fails_when_grace_does_not_cover_drain(grace: int, ok: bool) -> None:
    """helm template refuses a grace period that is not above the drain timeout plus 15 s."""
    result = helm("template", "wf", str(CHART), f"--set=terminationGracePeriodSeconds={grace}")
    assert (result.returncode == 0) is ok, result.stderr
    if not ok:
        assert "terminationGracePeriodSeconds (" in result.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("worker.concurency=5", "concurency"),
        ("redis.password=hunter2", "password"),
        ("keda.enable=false", "enable"),
        ("redis.mode=replica", "mode"),
        ("image.tag=latest", "tag"),
    ],
)
def test_values_schema_rejects_typos_and_bad_values(setting: str, message: str) -> None:
    """A misspelled key, a password value, an unknown mode or a `latest` tag fail helm template."""
    result = helm("template", "wf", str(CHART), f"--set={setting}")
    assert result.returncode != 0
    assert "schema" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_probes_on_named_http_port(scenario: str) -> None:
    """Liveness calls /healthz and readiness /readyz on the container port named http."""
    manifests = render_scenario(scenario)
    container = _pod_spec(manifests)["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    port = int(_config(manifests)["WORKER_HTTP_PORT"])
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert one(manifests, "Service")["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_security_context_locked_down(scenario: str) -> None:
    """Pods run non-root, read-only, unprivileged, without capabilities, under RuntimeDefault."""
    pods = [_pod_spec(render_scenario(scenario)), one(render_scenario(scenario), "Pod")["spec"]]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            ctx = container["securityContext"]
            assert ctx["runAsNonRoot"] is True
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["privileged"] is False
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    worker = pods[0]
    assert {"name": "tmp", "mountPath": "/tmp"} in worker["containers"][0]["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in worker["volumes"])


def test_default_resources_one_cpu_three_gib() -> None:
    """By default a worker pod requests and is limited to 1 CPU and 3Gi."""
    resources = _pod_spec(render_scenario("default"))["containers"][0]["resources"]
    expected = {"cpu": "1", "memory": "3Gi"}
    assert resources == {"requests": expected, "limits": expected}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pods_are_scraped_by_exactly_one_path(scenario: str) -> None:
    """Each scenario's pods carry either the prometheus.io scrape annotations (for the annotation
    job) or a PodMonitor selecting them, never both, plus a checksum of the ConfigMap."""
    manifests = render_scenario(scenario)
    annotations = one(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["checksum/config"]) == 64
    monitors = by_kind(manifests, "PodMonitor")
    assert len(monitors) == int(_values(scenario)["podMonitor"]["enabled"])
    if monitors:
        assert not [k for k in annotations if k.startswith("prometheus.io/")], annotations
    else:
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == _config(manifests)["WORKER_HTTP_PORT"]
        assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize(
    ("sets", "annotated", "monitored"),
    [
        ([], True, False),
        (["podMonitor.enabled=true"], False, True),
        (["podMonitor.enabled=true", "scrapeAnnotations=true"], False, True),
        (["scrapeAnnotations=false"], False, False),
    ],
)
def test_scrape_paths_are_exclusive_by_construction(
    sets: list[str], annotated: bool, monitored: bool
) -> None:
    """Whatever the values say, the annotations and the PodMonitor are never rendered together."""
    manifests = render(sets=sets)
    annotations = one(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert ("prometheus.io/scrape" in annotations) is annotated
    assert bool(by_kind(manifests, "PodMonitor")) is monitored


def test_config_change_changes_checksum() -> None:
    """Changing a worker setting changes the pod template, so pods roll."""
    before = one(render(), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    after = one(render(sets=["worker.concurrency=7"]), "Deployment")["spec"]["template"][
        "metadata"
    ]["annotations"]
    assert before["checksum/config"] != after["checksum/config"]


# --- settings and secrets ---------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_password_only_by_secret_reference(scenario: str) -> None:
    """No Secret is rendered; the password reaches the pod only through secretKeyRef."""
    manifests = render_scenario(scenario)
    assert not by_kind(manifests, "Secret")
    values = _values(scenario)
    env = container_env(one(manifests, "Deployment"))
    sentinel_password = values["redis"]["mode"] == "sentinel" and values["redis"]["sentinel"].get(
        "passwordFromSecret", False
    )
    passwords = {name for name in env if "PASSWORD" in name}
    assert passwords == {"REDIS_PASSWORD"} | (
        {"REDIS_SENTINEL_PASSWORD"} if sentinel_password else set()
    )
    for name in passwords:
        assert env[name]["valueFrom"]["secretKeyRef"] == {
            "name": values["redis"]["existingSecret"],
            "key": values["redis"]["existingSecretPasswordKey"],
        }
    config = _config(manifests)
    assert not any("PASSWORD" in key for key in config)
    assert "@" not in config["REDIS_URL"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_configmap_carries_worker_settings(scenario: str) -> None:
    """The ConfigMap holds every WORKER_* setting as a string, plus the Redis address and mode."""
    values = _values(scenario)
    config = _config(render_scenario(scenario))
    assert config["WORKER_QUEUE"] == values["worker"]["queue"]
    assert config["WORKER_CONCURRENCY"] == str(values["worker"]["concurrency"])
    assert config["WORKER_SHUTDOWN_TIMEOUT"] == str(values["worker"]["shutdownTimeoutSeconds"])
    assert config["REDIS_MODE"] == values["redis"]["mode"]
    for name in (
        "LEASE_SECONDS",
        "JOB_TIMEOUT",
        "MAX_ATTEMPTS",
        "RESULT_TTL",
        "WORKFLOWS",
        "LOG_FORMAT",
        "BENCHMARK_MODE",
    ):
        assert f"WORKER_{name}" in config
    assert all(isinstance(v, str) for v in config.values())
    for name, value in values["worker"]["extraEnv"].items():
        assert config[name] == str(value)


def test_large_numbers_are_not_rendered_in_exponent_form() -> None:
    """A two-week result TTL renders as digits, not Go's 1.2096e+06."""
    config = _config(tuple(render(sets=["worker.resultTtlSeconds=1209600"])))
    assert config["WORKER_RESULT_TTL"] == "1209600"


def test_redis_urls_per_topology() -> None:
    """REDIS_URL names the Redis, the Sentinel or the cluster seed, and uses rediss:// with TLS."""
    urls = {s: _config(render_scenario(s))["REDIS_URL"] for s in SCENARIOS}
    assert urls["default"] == "redis://redis-master:6379/0"
    assert urls["sentinel"] == "redis://redis-sentinel.data.svc:26379/2"
    assert urls["cluster"] == "redis://redis-cluster.data.svc:6379"
    assert urls["tls"] == "rediss://master.redis.example.internal:6380/0"
    assert _config(render_scenario("sentinel"))["REDIS_SENTINEL_MASTER"] == "primary"


def test_tls_mounts_ca_and_enables_tls_in_triggers() -> None:
    """With TLS the CA is mounted at REDIS_TLS_CA_FILE and KEDA gets enableTLS plus the CA."""
    manifests = render_scenario("tls")
    pod = _pod_spec(manifests)
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "redis-ca")
    volume = next(v for v in pod["volumes"] if v["name"] == "redis-ca")
    assert volume["secret"]["secretName"] == "redis-ca"
    ca_file = _config(manifests)["REDIS_TLS_CA_FILE"]
    assert ca_file == f"{mount['mountPath']}/{volume['secret']['items'][0]['path']}"
    assert ca_file.endswith("/ca.pem")
    for trigger in one(manifests, "ScaledObject")["spec"]["triggers"]:
        assert trigger["metadata"]["enableTLS"] == "true"
    refs = {
        r["parameter"]: r
        for r in one(manifests, "TriggerAuthentication")["spec"]["secretTargetRef"]
    }
    assert (refs["ca"]["name"], refs["ca"]["key"]) == ("redis-ca", "ca.pem")
    assert "tls" not in refs


# --- the other objects ------------------------------------------------------------------------


def test_network_policy_allows_redis_dns_and_monitoring_only() -> None:
    """The NetworkPolicy lets out only Redis, DNS and extraEgress, and lets in only monitoring."""
    manifests = render_scenario("sentinel")
    policy = one(manifests, "NetworkPolicy")["spec"]
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    redis, dns, extra = policy["egress"]
    assert redis["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    assert {p["port"] for p in redis["ports"]} == {6379, 26379}
    assert sorted((p["port"], p["protocol"]) for p in dns["ports"]) == [(53, "TCP"), (53, "UDP")]
    assert extra["ports"] == [{"port": 443, "protocol": "TCP"}]
    monitoring = policy["ingress"][0]
    assert monitoring["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}
    ]
    assert monitoring["ports"] == [{"port": "http", "protocol": "TCP"}]
    test_pod_labels = one(manifests, "Pod")["metadata"]["labels"]
    assert (
        policy["ingress"][1]["from"][0]["podSelector"]["matchLabels"].items()
        <= test_pod_labels.items()
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pdb_allows_one_eviction(scenario: str) -> None:
    """The PodDisruptionBudget, when enabled, allows one pod to be evicted at a time, and unready
    pods (all of them during a Redis outage) may always be evicted, so drains never block."""
    pdbs = by_kind(render_scenario(scenario), "PodDisruptionBudget")
    assert len(pdbs) == int(_values(scenario)["podDisruptionBudget"]["enabled"])
    for pdb in pdbs:
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_prometheus_rule_carries_the_rules_file() -> None:
    """The PrometheusRule holds the groups of files/workflow-worker.rules.yml, each expression
    limited to the release's namespace and otherwise unchanged."""
    rules = yaml.safe_load((CHART / "files" / "workflow-worker.rules.yml").read_text())
    rendered = one(render_scenario("tls"), "PrometheusRule")["spec"]["groups"]
    matcher = f'namespace="{NAMESPACE}"'
    for group in rendered:
        for rule in group["rules"]:
            assert matcher in rule["expr"], rule["expr"]
            rule["expr"] = rule["expr"].replace("{" + matcher + "}", "").replace(matcher + ",", "")
    for group in [*rendered, *rules["groups"]]:
        for rule in group["rules"]:
            rule["expr"] = " ".join(rule["expr"].split())
    assert rendered == rules["groups"]


def test_pod_monitor_scrapes_http_port() -> None:
    """The PodMonitor scrapes /metrics on the worker pods' port named http, with extra labels."""
    manifests = render_scenario("sentinel")
    monitor = one(manifests, "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s"}
    ]
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_helm_test_pod_calls_healthz_without_joining_the_service() -> None:
    """The helm test hook pod requests /healthz through the Service and is not selected by it."""
    manifests = render_scenario("default")
    pod = one(manifests, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    service = one(manifests, "Service")
    script = pod["spec"]["containers"][0]["command"][-1]
    assert f"http://{service['metadata']['name']}:8080/healthz" in script
    assert not service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


@pytest.mark.parametrize(
    "tag",
    [
        "0.1.0",
        "v" + "1234567890" * 10 + ".build-7",  # a valid Docker tag of 108 characters
        "1.4.0@sha256:" + "ab" * 32,  # the digest-in-tag form older values used
        "release_2026.12.01-" + "x" * 44 + "--" + "y" * 10,
    ],
)
def test_names_and_labels_fit_kubernetes_limits(tag: str) -> None:
    """A long release name and any valid image tag still yield names of at most 63 characters
    and label values Kubernetes accepts (at most 63 characters, alphanumeric at both ends)."""
    manifests = render(release="r" * 53, sets=[f"image.tag={tag}"])
    for manifest in manifests:
        if manifest["kind"] != "Pod":
            assert len(manifest["metadata"]["name"]) <= 63
        labels = dict(manifest["metadata"].get("labels", {}))
        if manifest["kind"] == "Deployment":
            labels |= manifest["spec"]["template"]["metadata"]["labels"]
        for value in labels.values():
            assert len(value) <= 63, value
            assert LABEL_VALUE.fullmatch(value), value
    version = one(manifests, "Deployment")["metadata"]["labels"]["app.kubernetes.io/version"]
    assert tag.split("@")[0].startswith(version[:20])
    container = _pod_spec(tuple(manifests))["containers"][0]
    assert container["image"] == f"ghcr.io/example/workflow-worker:{tag}"
