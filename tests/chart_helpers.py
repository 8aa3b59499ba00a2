"""Shared code for the chart tests: run the real helm binary offline and cache what it renders.

The engines are installed by `scripts/install-tools.sh` (`just tools`, run before `just test`). A
missing engine is a test failure, never a skip: a skip would pass CI without checking the chart.
"""

from __future__ import annotations

import atexit
import fnmatch
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

__all__ = [
    "API_VERSIONS",
    "CHART",
    "CHECKOV",
    "HELM",
    "NAMESPACE",
    "REPO",
    "SCENARIOS",
    "SCHEMAS",
    "VERSIONS",
    "by_kind",
    "chart_digest",
    "container_env",
    "helm",
    "helm_env",
    "notes",
    "one",
    "pod_environment",
    "render",
    "render_scenario",
    "require_tool",
    "scenario_values",
]

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "workflow-worker"
HELM = REPO / ".tools" / "bin" / "helm"
CHECKOV = REPO / ".tools" / "bin" / "checkov"
SCHEMAS = REPO / "tests" / "schemas"
# One line per released chart version: "<version> <sha256 of the packaged files>", oldest first.
VERSIONS = REPO / "tests" / "chart_versions.txt"
NAMESPACE = "workflows"
# Offline there is no API server to ask: declare the CRD APIs a target cluster would serve.
API_VERSIONS = ("--api-versions", "keda.sh/v1alpha1", "--api-versions", "monitoring.coreos.com/v1")
SCENARIOS = tuple(
    sorted(p.name.removesuffix("-values.yaml") for p in CHART.glob("ci/*-values.yaml"))
)

Manifest = dict[str, Any]


def require_tool(path: Path) -> Path:
    """`path` if it is an executable; otherwise fail the test with the command that installs it."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing: run scripts/install-tools.sh (just tools)", pytrace=False)
    return path


@functools.cache
def _helm_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="helm-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def helm_env() -> dict[str, str]:
    """Environment for helm with its cache, config and data in a throw-away directory."""
    home = _helm_home()
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run helm with `args`; the caller checks the return code."""
    return subprocess.run(
        [str(require_tool(HELM)), *args],
        capture_output=True,
        text=True,
        env=helm_env(),
        check=False,
        timeout=60,
    )


def scenario_values(scenario: str) -> Path:
    """The ci/ values file of a scenario."""
    return CHART / "ci" / f"{scenario}-values.yaml"


def _template_args(
    release: str, values: Sequence[Path], sets: Sequence[str], api_versions: bool, namespace: str
) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    if api_versions:
        args += list(API_VERSIONS)
    return args


def render(
    release: str = "wf",
    values: Sequence[Path] = (),
    sets: Sequence[str] = (),
    *,
    api_versions: bool = True,
    namespace: str = NAMESPACE,
) -> list[Manifest]:
    """`helm template` output as a list of objects; fails the test with helm's error text."""
    result = helm(*_template_args(release, values, sets, api_versions, namespace))
    if result.returncode != 0:
        pytest.fail(f"helm template failed:\n{result.stderr}", pytrace=False)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def render_scenario(scenario: str) -> tuple[Manifest, ...]:
    """The objects of one ci/ scenario (release named after it), rendered once per session."""
    return tuple(render(scenario, [scenario_values(scenario)]))


def by_kind(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    """The objects of one kind."""
    return [m for m in manifests if m.get("kind") == kind]


def one(manifests: Iterable[Manifest], kind: str) -> Manifest:
    """The single object of `kind`; fails if there is not exactly one."""
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container_env(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """The `env` entries of the worker container, by name."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item for item in container.get("env", [])}


def notes(*sets: str) -> str:
    """The NOTES.txt helm prints after an install (client-side dry run, no cluster needed)."""
    args = ["install", "wf", str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    if result.returncode != 0:
        pytest.fail(f"helm install --dry-run failed:\n{result.stderr}", pytrace=False)
    return result.stdout.split("NOTES:", 1)[1]


def _secret_value(secrets: Mapping[str, Mapping[str, str]], ref: Mapping[str, str]) -> str:
    return secrets[ref["name"]][ref["key"]]


def _container_env(
    objects: list[Manifest],
    container: Mapping[str, Any],
    secrets: Mapping[str, Mapping[str, str]],
    fields: Mapping[str, str],
) -> dict[str, str]:
    config_maps = {m["metadata"]["name"]: m.get("data", {}) for m in by_kind(objects, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in item["valueFrom"]:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def _write_secret_volumes(
    pod: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]], root: Path
) -> dict[str, str]:
    """Write each mounted Secret volume under root; returns {mountPath: local folder}."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    moved: dict[str, str] = {}
    for mount in pod["containers"][0].get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        folder = root / mount["mountPath"].lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        content = secrets[secret["secretName"]]
        items = secret.get("items") or [{"key": k, "path": k} for k in content]
        for item in items:
            (folder / item["path"]).write_text(content[item["key"]])
        moved[mount["mountPath"]] = str(folder)
    return moved


def pod_environment(
    manifests: Iterable[Manifest],
    secrets: Mapping[str, Mapping[str, str]],
    root: Path,
    fields: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """What the kubelet would hand the worker container: its ConfigMap (`envFrom`) and `env`, with
    `secretKeyRef`s read from `secrets` ({name: {key: value}}) and downward-API `fieldRef`s from
    `fields` ({fieldPath: value}); Secret volumes are written under `root` and every path in the
    result is moved there, as if the container's filesystem were `root`."""
    objects = list(manifests)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    env = _container_env(objects, pod["containers"][0], secrets, fields or {})
    moved = _write_secret_volumes(pod, secrets, root)
    for name, value in env.items():
        for mount_path, folder in moved.items():
            if value.startswith(mount_path + "/"):
                env[name] = folder + value[len(mount_path) :]
    return env


def _ignored(relative: Path, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith("/"):
            if pattern.rstrip("/") in relative.parts[:-1]:
                return True
        elif fnmatch.fnmatch(relative.name, pattern) or fnmatch.fnmatch(str(relative), pattern):
            return True
    return False


def chart_digest(chart: Path = CHART) -> str:
    """SHA-256 over the files `helm package` would ship (paths and contents, .helmignore applied):
    any change to it is a new chart version."""
    lines = (chart / ".helmignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    digest = hashlib.sha256()
    for path in sorted(p for p in chart.rglob("*") if p.is_file()):
        relative = path.relative_to(chart)
        if not _ignored(relative, patterns):
            digest.update(f"{relative}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def recorded_versions() -> list[tuple[str, str]]:
    """(version, digest) pairs of tests/chart_versions.txt, oldest first."""
    rows = [line.split() for line in VERSIONS.read_text().splitlines() if line.strip()]
    return [(version, digest) for version, digest in rows]


def record_version() -> int:
    """Append the current chart version and digest; refuse when the version is already recorded
    with other contents (the chart changed without a version bump)."""
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    digest = chart_digest()
    known = dict(recorded_versions())
    if known.get(version) == digest:
        print(f"chart {version} is already recorded")
        return 0
    if version in known:
        print(f"chart {version} was recorded with other contents: bump `version` in Chart.yaml")
        return 1
    with VERSIONS.open("a") as out:
        out.write(f"{version} {digest}\n")
    print(f"recorded chart {version}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["record-version"]:
        print("usage: python -m tests.chart_helpers record-version")
        sys.exit(2)
    sys.exit(record_version())


@dataclass(frozen=True)
class CheckovRun:
    """What checkov said: its process, its reports, and its failed checks as `ID resource`."""

    process: subprocess.CompletedProcess[str]
    reports: list[dict[str, Any]]
    failed: list[str]


def checkov(folder: Path, *, quiet: bool = True) -> CheckovRun:
    """Run the real checkov over the manifests in `folder` with the chart's config (`quiet`
    leaves passed checks out of the reports)."""
    result = subprocess.run(
        [
            str(require_tool(CHECKOV)),
            *("-d", str(folder), "--framework", "kubernetes", "--compact"),
            *(("--quiet",) if quiet else ()),
            *("--skip-download", "--config-file", str(CHART / ".checkov.yaml"), "-o", "json"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        check=False,
        timeout=120,
    )
    report = json.loads(result.stdout)
    reports: list[dict[str, Any]] = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']}"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    return CheckovRun(result, reports, failed)
