"""Helpers for the Terraform tests: run terraform in temporary copies, read HCL, render values.

Also a small command line for the generated parts of terraform/:
    .venv/bin/python -m tests.terraform_helpers docs   # regenerate the module README tables
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[1]
TERRAFORM = REPO / "terraform"
MODULES = TERRAFORM / "modules"
WORKSPACES_DIR = TERRAFORM / "workspaces"
CHART = REPO / "helm" / "workflow-worker"
DASHBOARD_JSON = REPO / "dashboards" / "workflow-worker.json"

PROVIDER_FREE_MODULES = ("values", "naming", "scrape-config")
PROVIDER_MODULES = ("worker", "monitoring", "dashboard")
WORKSPACES = ("hmg", "staging", "production")

DOCS_BEGIN = "<!-- BEGIN_TF_DOCS -->"
DOCS_END = "<!-- END_TF_DOCS -->"


class ToolMissingError(AssertionError):
    """A tool the tests drive is not installed (a failure, never a skip)."""


def find_tool(name: str, repo_relative: str | None = None) -> str:
    """Return the path of a tool from .tools/bin (when given) or PATH, or raise ToolMissingError."""
    if repo_relative is not None:
        candidate = REPO / repo_relative
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        hint = "run scripts/install-tools.sh" if repo_relative else "install it and put it on PATH"
        raise ToolMissingError(f"{name} is not installed: {hint}")
    return found


def terraform_env() -> dict[str, str]:
    """Environment for offline, non-interactive terraform runs."""
    env = dict(os.environ)
    env.update(
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        TF_CLI_CONFIG_FILE="/dev/null",
    )
    env.pop("TF_WORKSPACE", None)
    env.pop("TF_DATA_DIR", None)
    return env


def run(
    args: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    *,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command; with check, fail with its output when it exits non-zero."""
    proc = subprocess.run(
        list(args),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode} in {cwd}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


def terraform(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run terraform with -no-color and the offline environment."""
    tf = find_tool("terraform")
    return run([tf, *args], cwd, terraform_env(), check=check)


def copy_terraform_tree(dest: Path) -> Path:
    """Copy terraform/ to dest/terraform without local state, plugin directories or lock files."""
    target = dest / "terraform"
    shutil.copytree(
        TERRAFORM,
        target,
        ignore=shutil.ignore_patterns(
            ".terraform", ".terraform.lock.hcl", "*.tfstate*", "terraform.tfstate.d"
        ),
    )
    return target


# ---------------------------------------------------------------------------
# HCL
# ---------------------------------------------------------------------------


def unquote(value: str) -> str:
    """Strip the quotes python-hcl2 (>= 7) keeps around block labels and strings."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _heredoc(value: str) -> str:
    """Body of a heredoc string as python-hcl2 (>= 7) keeps it (<<-EOT ... EOT)."""
    m = re.fullmatch(r"<<-?(\w+)\n(.*?)\n\s*\1\s*", value, re.DOTALL)
    return m.group(2) if m else value


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            unquote(k): _clean(v)
            for k, v in value.items()
            if not (k.startswith("__") and k.endswith("__"))
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return _heredoc(unquote(value))
    return value


@functools.lru_cache(maxsize=256)
def _load_hcl_cached(path: Path, mtime_ns: int) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        data: dict[str, Any] = _clean(hcl2.load(f))
    return data


def load_hcl(path: Path) -> dict[str, Any]:
    """Parse one .tf/.tfvars file into plain dicts (labels and strings unquoted, no metadata)."""
    # python-hcl2 8 parses slowly; the tests read the same files many times.
    return copy.deepcopy(_load_hcl_cached(path, path.stat().st_mtime_ns))


def blocks(parsed: Mapping[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (label, body) for single-label blocks such as variable, output, module."""
    for entry in parsed.get(kind, []):
        yield from entry.items()


def resources(parsed: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield (type, name, body) for each resource block."""
    for entry in parsed.get("resource", []):
        for rtype, named in entry.items():
            for name, body in named.items():
                yield rtype, name, body


def module_files(module_dir: Path) -> list[Path]:
    """The .tf files of one module (not its tests)."""
    return sorted(module_dir.glob("*.tf"))


def variables_of(module_dir: Path) -> dict[str, dict[str, Any]]:
    """Declared variables of a module: name -> body."""
    return {
        name: body
        for path in module_files(module_dir)
        for name, body in blocks(load_hcl(path), "variable")
    }


def outputs_of(module_dir: Path) -> dict[str, dict[str, Any]]:
    """Declared outputs of a module: name -> body."""
    return {
        name: body
        for path in module_files(module_dir)
        for name, body in blocks(load_hcl(path), "output")
    }


def variable_type_text(path: Path, name: str) -> str:
    """The `type = ...` expression of one variable block, as written (whitespace normalised)."""
    text = hcl_block(path.read_text(encoding="utf-8"), f'variable "{name}" {{')
    start = text.index("\n  type = ") + len("\n  type = ")
    depth = 0
    for i in range(start, len(text)):
        depth += text[i] in "({"
        depth -= text[i] in ")}"
        if depth == 0 and text[i] == "\n":
            return " ".join(text[start:i].split())
    raise ValueError(f"no type in variable {name!r} of {path}")


def hcl_block(text: str, header: str) -> str:
    """Return the text of the block starting with header (e.g. 'module "worker" {')."""
    start = text.index(header)
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    raise ValueError(f"unbalanced block {header!r}")


# ---------------------------------------------------------------------------
# Rendering chart values the way the root does, without providers
# ---------------------------------------------------------------------------


def values_wrapper_root(workdir: Path) -> Path:
    """Build a provider-free copy of the root: its variables, workspaces, and its naming and
    values blocks exactly as written (the provider layer, backend and outputs dropped)."""
    tree = copy_terraform_tree(workdir)
    root_main = (TERRAFORM / "main.tf").read_text(encoding="utf-8")
    naming = hcl_block(root_main, 'module "naming" {')
    values = hcl_block(root_main, 'module "values" {')
    for name in ("providers.tf", "versions.tf", "outputs.tf", "backend.tf"):
        (tree / name).unlink()
    outputs = {
        "values_yaml": "module.values.yaml",
        "namespace": "module.naming.namespace",
        "namespace_labels": "module.naming.namespace_labels",
        "helm_timeout_seconds": "module.values.helm_timeout_seconds",
        "operation_timeout_seconds": "module.values.operation_timeout_seconds",
    }
    blocks_text = "".join(
        f'output "{name}" {{\n  value = {expr}\n}}\n\n' for name, expr in outputs.items()
    )
    (tree / "main.tf").write_text(f"{naming}\n\n{values}\n\n{blocks_text}", encoding="utf-8")
    (tree / "versions.tf").write_text(
        'terraform {\n  required_version = ">= 1.9, < 2.0"\n}\n', encoding="utf-8"
    )
    return tree


# ---------------------------------------------------------------------------
# Generated parts of terraform/
# ---------------------------------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(body: Mapping[str, Any]) -> str:
    if "default" not in body:
        return "n/a"
    value = body["default"]
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str) and not value.startswith("${"):
        return f'`"{value}"`'
    return f"`{_cell(str(value))}`"


def _type(body: Mapping[str, Any]) -> str:
    text = str(body.get("type", "any")).removeprefix("${").removesuffix("}")
    return f"`{_cell(text)}`" if len(text) <= 40 else "`object` (see description)"


def module_docs(module_dir: Path) -> str:
    """Markdown Inputs/Outputs tables of a module, terraform-docs style."""
    rows = ["## Inputs", "", "| Name | Description | Type | Default | Required |"]
    rows.append("| --- | --- | --- | --- | --- |")
    variables = variables_of(module_dir)
    for name in sorted(variables, key=lambda n: ("default" in variables[n], n)):
        body = variables[name]
        required = "no" if "default" in body else "yes"
        rows.append(
            f"| `{name}` | {_cell(str(body.get('description', '')))} | {_type(body)} "
            f"| {_default(body)} | {required} |"
        )
    rows += ["", "## Outputs", "", "| Name | Description |", "| --- | --- |"]
    for name, body in sorted(outputs_of(module_dir).items()):
        rows.append(f"| `{name}` | {_cell(str(body.get('description', '')))} |")
    return "\n".join(rows) + "\n"


def readme_with_docs(readme: Path, docs: str) -> str:
    """The README text with its generated section replaced by docs."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(DOCS_BEGIN) + len(DOCS_BEGIN)
    end = text.index(DOCS_END)
    return f"{text[:start]}\n{docs}{text[end:]}"


def write_docs() -> list[Path]:
    """Regenerate the tables of every module README and the root README."""
    changed = []
    for module_dir in [*sorted(p for p in MODULES.iterdir() if p.is_dir()), TERRAFORM]:
        readme = module_dir / "README.md"
        new = readme_with_docs(readme, module_docs(module_dir))
        if new != readme.read_text(encoding="utf-8"):
            readme.write_text(new, encoding="utf-8")
            changed.append(readme)
    return changed


def main(argv: Sequence[str]) -> int:
    """Command line: docs."""
    commands = {"docs": write_docs}
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: python -m tests.terraform_helpers {{{'|'.join(commands)}}}")
        return 2
    for path in commands[argv[0]]():
        print(f"updated {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
