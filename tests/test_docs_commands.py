"""The commands README.md and docs/ show work on a fresh clone, where `just` is not on PATH:
every recipe is run through `./dev`, and every `./dev <recipe>` names a recipe of the justfile."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "loadtest" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
JUST = Path(sys.executable).with_name("just")


def _recipes() -> set[str]:
    out = subprocess.run(
        [str(JUST), "--summary"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_no_document_calls_just_directly() -> None:
    """No command line or inline command in the docs starts a recipe with `just`."""
    recipes = "|".join(re.escape(r) for r in sorted(_recipes(), key=len, reverse=True))
    direct = re.compile(rf"(^|[`$(]\s*|\$ (\S+=\S+ )*)just ({recipes}|load-test-\*)\b", re.M)
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in DOCS
        for match in direct.finditer(path.read_text())
    ]
    assert found == []


def test_every_dev_command_names_a_recipe() -> None:
    """`./dev <name>` in the docs is a recipe `just --summary` lists (or `--list`)."""
    recipes = _recipes() | {"--list"}
    named = {
        (path.relative_to(ROOT), name)
        for path in DOCS
        for name in re.findall(r"\./dev ([\w*-]+)", path.read_text())
    }
    unknown = {
        (str(path), name)
        for path, name in named
        if name not in recipes
        and not (name.endswith("*") and any(r.startswith(name[:-1]) for r in recipes))
    }
    assert named
    assert unknown == set()
