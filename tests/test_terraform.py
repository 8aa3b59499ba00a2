"""Terraform checked by real engines: fmt, validate and test of the provider-free modules, checkov.

The provider modules (helm, kubernetes, grafana) cannot be initialised offline; they are covered by
tests/test_terraform_static.py and by checkov here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.terraform_helpers import (
    MODULES,
    PROVIDER_FREE_MODULES,
    REPO,
    TERRAFORM,
    copy_terraform_tree,
    find_tool,
    terraform,
)


def test_terraform_is_formatted() -> None:
    """`terraform fmt -check -recursive terraform` finds nothing to reformat."""
    proc = terraform("fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM), cwd=REPO)
    assert proc.stdout == "", f"run `terraform fmt -recursive terraform`:\n{proc.stdout}"


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of terraform/, so that init and test leave nothing in the checkout."""
    return copy_terraform_tree(tmp_path_factory.mktemp("tf"))


@pytest.mark.parametrize("module", PROVIDER_FREE_MODULES)
def test_provider_free_module_validates_and_passes_its_tests(tree_copy: Path, module: str) -> None:
    """Each provider-free module initialises offline, validates, and passes `terraform test`."""
    workdir = tree_copy / "modules" / module
    assert list((MODULES / module / "tests").glob("*.tftest.hcl")), f"{module} has no tests"
    terraform("init", "-backend=false", "-input=false", "-no-color", cwd=workdir)
    terraform("validate", "-no-color", cwd=workdir)
    proc = terraform("test", "-no-color", cwd=workdir)
    assert "Success!" in proc.stdout, proc.stdout
    assert " 0 failed" in proc.stdout, proc.stdout


def test_terraform_tree_holds_no_local_state() -> None:
    """No .terraform directory, state file or module lock file sits in terraform/ (a lock file
    belongs to the root only)."""
    stray = [
        p.relative_to(REPO)
        for pattern in (".terraform", ".terraform.lock.hcl", "*.tfstate*", "terraform.tfstate.d")
        for p in TERRAFORM.rglob(pattern)
        if p != TERRAFORM / ".terraform.lock.hcl"
    ]
    assert stray == []


def _checkov(directory: Path) -> dict[str, Any]:
    checkov = find_tool("checkov", ".tools/bin/checkov")
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE")
    proc = subprocess.run(
        [
            checkov,
            "--config-file",
            str(TERRAFORM / ".checkov.yaml"),
            "-d",
            str(directory),
            "--framework",
            "terraform",
            "--compact",
            "--quiet",
            "--skip-download",
            "-o",
            "json",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    tf = [r for r in reports if r.get("check_type") == "terraform"]
    assert tf, f"checkov scanned no Terraform resource in {directory}:\n{proc.stdout[:2000]}"
    result: dict[str, Any] = tf[0]
    return result


@pytest.mark.parametrize("directory", ["terraform", "terraform/modules"])
def test_checkov_finds_no_failed_check(directory: str) -> None:
    """checkov scans the root (through its module calls) and each module: zero failed checks."""
    report = _checkov(REPO / directory)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} {c['file_path']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert summary["parsing_errors"] == 0
    # A scan that resolves no resource passes vacuously (seen with unresolvable module counts).
    assert summary["resource_count"] > 0, summary
    assert summary["passed"] > 0, summary


def test_checkov_skips_are_justified() -> None:
    """Every check skipped in terraform/.checkov.yaml carries a comment that says why."""
    lines = (TERRAFORM / ".checkov.yaml").read_text(encoding="utf-8").splitlines()
    in_skips = False
    for line in lines:
        stripped = line.strip()
        if not line.startswith(" ") and not stripped.startswith("#"):
            in_skips = stripped.startswith("skip-check:")
            continue
        if in_skips and stripped.startswith("- "):
            reason = stripped.split("#", 1)[1].strip() if "#" in stripped else ""
            assert reason, f"skip without a reason: {line}"
