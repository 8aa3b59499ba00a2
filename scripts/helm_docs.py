"""Generate a Helm chart's README.md from README.md.gotmpl and the `# --` comments in values.yaml.

A small, dependency-free stand-in for helm-docs (github.com/norwoodj/helm-docs), which is not
installable from the registries these machines use. It understands the same comment convention
(`# -- description`, continued on following `#` lines, an optional `(type)` hint) and the
template calls `chart.header`, `chart.description`, `chart.version`, `chart.appVersion`,
`chart.kubeVersion` and `chart.valuesTable`, so the real helm-docs can take over unchanged.

Usage: python scripts/helm_docs.py [--check] [CHART_DIR]   (default: helm/workflow-worker)
`--check` writes nothing and exits 1 when README.md is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ValueDoc", "main", "parse_values", "render_readme"]

DEFAULT_CHART = Path(__file__).resolve().parent.parent / "helm" / "workflow-worker"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")
_TEMPLATE_CALL = re.compile(r"\{\{-?\s*template\s+\"(?P<name>chart\.[A-Za-z]+)\"\s+\.\s*-?\}\}")
_TYPE_HINT = re.compile(r"^\((?P<type>[a-z]+)\)\s*")


@dataclass(frozen=True, slots=True)
class ValueDoc:
    """One documented key of values.yaml."""

    key: str
    type: str
    default: Any
    description: str


class ValuesDocError(Exception):
    """values.yaml has a key without a `# --` comment, or the template calls something unknown."""


def _comment_above(lines: list[str], index: int) -> str | None:
    """The `# --` comment block that ends right above line `index`, joined into one string."""
    block: list[str] = []
    i = index - 1
    while i >= 0 and lines[i].strip().startswith("#"):
        block.insert(0, lines[i].strip().lstrip("#").strip())
        if lines[i].strip().startswith("# --"):
            return " ".join(part for part in [block[0][2:].strip(), *block[1:]] if part)
        i -= 1
    return None


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null"


def parse_values(text: str) -> list[ValueDoc]:
    """Every key of a values.yaml text, in order; raises ValuesDocError on an undocumented key."""
    data = yaml.safe_load(text) or {}
    lines = text.splitlines()
    stack: list[tuple[int, str]] = []
    docs: list[ValueDoc] = []
    for index, line in enumerate(lines):
        match = _KEY.match(line)
        if match is None:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        path = [key for _, key in stack]
        description = _comment_above(lines, index)
        if description is None:
            raise ValuesDocError(
                f"values.yaml line {index + 1}: {'.'.join(path)} has no '# --' comment"
            )
        value: Any = data
        for key in path:
            value = value[key]
        hint = _TYPE_HINT.match(description)
        if hint is not None:
            description = description[hint.end() :]
        value_type = hint["type"] if hint is not None else _type_of(value)
        docs.append(ValueDoc(".".join(path), value_type, value, description))
    return docs


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def values_table(docs: list[ValueDoc]) -> str:
    """A Markdown table of the leaf values (an object with children is described by them)."""
    rows = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for doc in docs:
        if isinstance(doc.default, dict) and doc.default:
            continue
        default = json.dumps(doc.default, separators=(",", ":"))
        rows.append(f"| {doc.key} | {doc.type} | `{_cell(default)}` | {_cell(doc.description)} |")
    return "\n".join(rows)


def render_readme(chart_dir: Path) -> str:
    """README.md text for the chart in `chart_dir`."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8"))
    docs = parse_values((chart_dir / "values.yaml").read_text(encoding="utf-8"))
    parts = {
        "chart.header": f"# {chart['name']}",
        "chart.description": str(chart.get("description", "")).strip(),
        "chart.version": str(chart["version"]),
        "chart.appVersion": str(chart.get("appVersion", "")),
        "chart.kubeVersion": str(chart.get("kubeVersion", "")),
        "chart.valuesTable": values_table(docs),
    }

    def substitute(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in parts:
            raise ValuesDocError(f"README.md.gotmpl calls unknown template {name!r}")
        return parts[name]

    template = (chart_dir / "README.md.gotmpl").read_text(encoding="utf-8")
    return _TEMPLATE_CALL.sub(substitute, template)


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) the chart README; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("chart_dir", nargs="?", type=Path, default=DEFAULT_CHART)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args(argv)
    chart_dir: Path = args.chart_dir
    try:
        text = render_readme(chart_dir)
    except ValuesDocError as exc:
        print(f"helm_docs: {exc}", file=sys.stderr)
        return 1
    readme = chart_dir / "README.md"
    if args.check:
        if not readme.exists() or readme.read_text(encoding="utf-8") != text:
            print(
                f"helm_docs: {readme} is stale; run: python scripts/helm_docs.py", file=sys.stderr
            )
            return 1
        return 0
    readme.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
