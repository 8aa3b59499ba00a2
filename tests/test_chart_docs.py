"""Chart hygiene: values schema and comments, generated README, metadata, and checkov."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.chart_helpers import (
    CHART,
    REPO,
    SCENARIOS,
    checkov,
    render_scenario,
)

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(\s|$)")


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def _objects(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every sub-schema that declares `properties`, with its path."""
    found = [(path or "<root>", schema)] if "properties" in schema else []
    for name, sub in schema.get("properties", {}).items():
        found += _objects(sub, f"{path}.{name}")
    return found


def test_values_yaml_matches_schema() -> None:
    """The default values.yaml validates against values.schema.json (draft-07)."""
    schema = _schema()
    assert schema["$schema"].startswith("http://json-schema.org/draft-07/schema")
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((CHART / "values.yaml").read_text()))


def test_schema_closes_every_object() -> None:
    """The root and every object with declared properties set additionalProperties to false."""
    objects = _objects(_schema())
    assert len(objects) > 10
    open_ones = [path for path, sub in objects if sub.get("additionalProperties") is not False]
    assert open_ones == []


def test_values_yaml_first_line_points_at_schema() -> None:
    """values.yaml starts with the yaml-language-server schema comment."""
    first = (CHART / "values.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=values.schema.json"


def test_every_value_has_a_helm_docs_comment() -> None:
    """Every key in values.yaml sits under a `# --` comment block."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    missing = []
    for index, line in enumerate(lines):
        if not _KEY_LINE.match(line):
            continue
        above = index - 1
        while above >= 0 and lines[above].strip().startswith("#") and "# --" not in lines[above]:
            above -= 1
        if above < 0 or not lines[above].strip().startswith("# --"):
            missing.append(line.strip())
    assert missing == []


def test_every_schema_property_is_in_values_yaml() -> None:
    """Each key the schema allows has a default in values.yaml (except Helm's `global`)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(schema: dict[str, Any], data: dict[str, Any], path: str) -> list[str]:
        gaps = []
        for name, sub in schema.get("properties", {}).items():
            if name not in data:
                gaps.append(f"{path}{name}")
            elif "properties" in sub:
                gaps += walk(sub, data[name], f"{path}{name}.")
        return gaps

    assert walk(_schema(), values, "") == ["global"]


def test_readme_is_generated_and_current() -> None:
    """README.md equals what scripts/helm_docs.py renders from README.md.gotmpl and values.yaml."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "helm_docs.py"), "--check", str(CHART)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    readme = (CHART / "README.md").read_text()
    assert "| worker.shutdownTimeoutSeconds | int | `300` |" in readme
    assert "| keda.listLength | int | `null` |" in readme


def test_helm_docs_refuses_an_undocumented_value(tmp_path: Path) -> None:
    """The README generator fails on a value without a `# --` comment."""
    for name in ("Chart.yaml", "README.md.gotmpl"):
        (tmp_path / name).write_text((CHART / name).read_text())
    (tmp_path / "values.yaml").write_text("# -- documented\na: 1\nb: 2\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "helm_docs.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "b has no '# --' comment" in result.stderr


def test_chart_metadata() -> None:
    """Chart.yaml is v2, pins kubeVersion, and appVersion is the package and image version."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == ">=1.25.0-0"
    assert chart["appVersion"] == project["version"] == values["image"]["tag"]


def test_checkov_skips_are_justified() -> None:
    """Every checkov skip has a reason: a comment in .checkov.yaml or `=reason` in an annotation."""
    text = (CHART / ".checkov.yaml").read_text()
    skips = yaml.safe_load(text)["skip-check"]
    assert skips
    for check in skips:
        assert re.search(rf"^\s*# {re.escape(check)} \(.+\): \S+", text, re.MULTILINE), check
    for template in (CHART / "templates").rglob("*.yaml"):
        for match in re.finditer(r"checkov\.io/skip\d+: (?P<value>.*)", template.read_text()):
            check, _, reason = match["value"].partition("=")
            assert re.fullmatch(r"CKV2?_K8S_\d+", check)
            assert len(reason.split()) >= 5, match["value"]


def test_checkov_passes_on_rendered_manifests(tmp_path: Path) -> None:
    """checkov finds zero failed checks in the rendered manifests of all scenarios."""
    for scenario in SCENARIOS:
        (tmp_path / f"{scenario}.yaml").write_text(yaml.safe_dump_all(render_scenario(scenario)))
    run = checkov(tmp_path)
    reports, failed = run.reports, run.failed
    summary = reports[0]["summary"]
    assert failed == []
    assert run.process.returncode == 0, run.process.stderr
    assert summary["passed"] > 500
    assert summary["resource_count"] >= 8 * len(SCENARIOS)
