"""Shared code for the chart tests: run the real helm binary offline and cache what it renders.

The engines are installed by `scripts/install-tools.sh` (`just tools`, run before `just test`). A
missing engine is a test failure, never a skip: a skip would pass CI without checking the chart.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
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
    "by_kind",
    "container_env",
    "helm",
    "helm_env",
    "one",
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
    release: str, values: Sequence[Path], sets: Sequence[str], api_versions: bool
) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", NAMESPACE]
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
) -> list[Manifest]:
    """`helm template` output as a list of objects; fails the test with helm's error text."""
    result = helm(*_template_args(release, values, sets, api_versions))
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
