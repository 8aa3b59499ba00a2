"""The Dockerfile, checked statically: there is no Docker engine on these machines to build it."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILD_TOOLS = re.compile(
    r"\b(build-essential|gcc|g\+\+|clang|make|cmake|python3?-dev|libc6?-dev)\b"
)


@dataclass
class Stage:
    """One FROM ... block of a Dockerfile."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        """The arguments of every instruction `keyword` in this stage."""
        return [rest for word, rest in self.instructions if word == keyword]


def _logical_lines(text: str) -> list[str]:
    """Instructions with backslash continuations joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def parse_dockerfile(text: str) -> tuple[list[tuple[str, str]], list[Stage]]:
    """Global instructions (before the first FROM) and the stages, in order."""
    preamble: list[tuple[str, str]] = []
    stages: list[Stage] = []
    for line in _logical_lines(text):
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append((word, rest))
        else:
            preamble.append((word, rest))
    return preamble, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    """The parsed stages of the repository's Dockerfile."""
    return parse_dockerfile((REPO / "Dockerfile").read_text())[1]


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether `path` (or a parent folder) matches a .dockerignore pattern (no `!` rules here)."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        assert not pattern.startswith("!"), "negations are not modelled by this check"
        pattern = pattern.rstrip("/")
        for candidate in candidates:
            if fnmatch.fnmatch(candidate, pattern) or fnmatch.fnmatch(candidate, f"**/{pattern}"):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatch(candidate.split("/")[-1], pattern[3:]):
                return True
    return False


def test_parser_handles_continuations_and_comments() -> None:
    """The small parser joins continued lines, skips comments and splits stages."""
    text = "ARG V=1\nFROM a:1 AS one\n# note\nRUN x \\\n  # inner\n  && y\nFROM one\nUSER 5\n"
    preamble, parsed = parse_dockerfile(text)
    assert preamble == [("ARG", "V=1")]
    assert [(s.base, s.name) for s in parsed] == [("a:1", "one"), ("one", None)]
    assert parsed[0].args("RUN") == ["x  && y"]
    assert parsed[1].args("USER") == ["5"]


def test_multi_stage_on_slim_python(stages: list[Stage]) -> None:
    """The image is built in a builder stage and runs from a separate stage, both on the base
    argument, which defaults to the official slim Python image."""
    preamble = parse_dockerfile((REPO / "Dockerfile").read_text())[0]
    assert ("ARG", "PYTHON_VERSION=3.12") in preamble
    assert ("ARG", "BASE_IMAGE=python:${PYTHON_VERSION}-slim") in preamble
    assert len(stages) >= 2
    assert all(s.base == "${BASE_IMAGE}" for s in stages)
    builder, final = stages[0], stages[-1]
    assert builder.name == "builder"
    assert any("pip wheel" in run for run in builder.args("RUN"))
    assert "--from=builder /opt/venv /opt/venv" in final.args("COPY")
    assert "PATH=/opt/venv/bin:$PATH" in " ".join(final.args("ENV"))


def test_final_stage_runs_as_numeric_non_root_user(stages: list[Stage]) -> None:
    """The final stage's last USER is a numeric, non-zero UID (so runAsNonRoot can verify it)."""
    users = stages[-1].args("USER")
    assert users
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) >= 10000
    assert any(f"--uid {uid}" in run for run in stages[-1].args("RUN"))


def test_no_build_tools_in_final_stage(stages: list[Stage]) -> None:
    """Compilers and headers are installed only in the builder, never in the final stage."""
    assert any(BUILD_TOOLS.search(run) for run in stages[0].args("RUN"))
    for run in stages[-1].args("RUN"):
        assert not BUILD_TOOLS.search(run), run
        assert "apt-get install" not in run
        assert "pip install" not in run


def test_entrypoint_signal_and_port(stages: list[Stage]) -> None:
    """`workflow-worker run` is the default command, SIGTERM stops it, and 8080 is exposed."""
    final = stages[-1]
    assert [json.loads(e) for e in final.args("ENTRYPOINT")] == [["workflow-worker"]]
    assert [json.loads(c) for c in final.args("CMD")] == [["run"]]
    assert final.args("STOPSIGNAL") == ["SIGTERM"]
    assert final.args("EXPOSE") == ["8080"]


def test_entrypoint_is_the_packages_console_script() -> None:
    """pyproject.toml declares the `workflow-worker` console script the image runs."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "workflow-worker" in project["scripts"]


def test_extra_requirements_build_argument(stages: list[Stage]) -> None:
    """A build argument installs extra requirements (a team's workflow packages) in the builder."""
    builder = stages[0]
    assert any(a.startswith("EXTRA_REQUIREMENTS") for a in builder.args("ARG"))
    assert any("$EXTRA_REQUIREMENTS" in run for run in builder.args("RUN"))


def test_copied_files_exist_and_are_not_ignored(stages: list[Stage]) -> None:
    """Every file COPY'd from the build context exists and is not excluded by .dockerignore."""
    patterns = _dockerignore()
    sources: list[str] = []
    for stage in stages:
        for copy in stage.args("COPY"):
            words = shlex.split(copy)
            if any(w.startswith("--from=") for w in words):
                continue
            sources += [w for w in words[:-1] if not w.startswith("--")]
    assert {"pyproject.toml", "workflow_worker/"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _ignored(source.rstrip("/"), patterns), source
    readme = tomllib.loads((REPO / "pyproject.toml").read_text())["project"].get("readme")
    if readme:
        assert readme in sources, "the wheel build needs the readme pyproject.toml names"


def test_dockerignore_keeps_local_state_out() -> None:
    """.dockerignore excludes the virtualenvs, tools and git history from the build context."""
    patterns = _dockerignore()
    for path in (
        ".venv",
        ".venv-checkov",
        ".tools/bin/helm",
        ".git/HEAD",
        "workflow_worker/__pycache__/x.pyc",
    ):
        assert _ignored(path, patterns), path
    for path in ("workflow_worker/engine/keys.py", "pyproject.toml", "README.md"):
        assert not _ignored(path, patterns), path


def test_pip_settings_come_from_build_secrets(stages: list[Stage]) -> None:
    """Every pip call of the builder can read a pip.conf and a CA bundle from build secrets (never
    from a layer), and nothing else in the Dockerfile copies pip settings into the image."""
    pip_runs = [run for run in stages[0].args("RUN") if "pip " in run and "venv" not in run]
    assert len(pip_runs) == 2
    for run in pip_runs:
        assert "--mount=type=secret,id=pip-conf,target=/etc/pip.conf" in run
        assert "--mount=type=secret,id=pip-ca" in run
    text = (REPO / "Dockerfile").read_text()
    assert "cert = /run/secrets/pip-ca" in text
    for stage in stages:
        for copy in stage.args("COPY") + stage.args("ADD"):
            assert "pip" not in copy, copy
            assert ".crt" not in copy, copy
