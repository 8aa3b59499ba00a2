"""docs/troubleshooting.md against the real command line: every message the guide lists is
produced by a real failure (the installed `workflow-worker` script, a real server, a closed port,
a taken port, broken application modules), as the only line on stderr, with its exit code."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT, worker_env
from tests.servers import free_port
from workflow_worker._report import failure

GUIDE = ROOT / "docs" / "troubleshooting.md"
HEADING = re.compile(r"^### `(.+)`$", re.MULTILINE)
SCRIPT = Path(sys.executable).with_name("workflow-worker")

# Application modules a newcomer might point WORKER_WORKFLOWS at, written into the test's
# working directory.
APP_FILES = {
    "broken.py": "async def hello(payload, ctx)\n    return 'hi'\n",
    "needs.py": "import not_installed_dependency_xyz\n",
    "raises.py": "API_KEY = None\nraise RuntimeError('API_KEY is not set')\n",
    "streams.py": "async def stream(payload, ctx):\n    yield 1\n\nWORKFLOWS = {'s': stream}\n",
    "life.py": (
        "import contextlib\n\n@contextlib.asynccontextmanager\nasync def lifespan():\n"
        "    raise ConnectionRefusedError('db:5432')\n    yield\n"
    ),
}


def guide_messages() -> list[str]:
    return HEADING.findall(GUIDE.read_text())


def pattern(message: str) -> re.Pattern[str]:
    """The guide's message as a regular expression: each `<...>` stands for any text."""
    return re.compile(".+".join(re.escape(part) for part in re.split(r"<[^>]+>", message)))


def heading(part: str) -> str:
    """The one guide message containing `part`."""
    found = [m for m in guide_messages() if part in m]
    assert len(found) == 1, f"{part!r} matches {found}"
    return found[0]


@dataclass(frozen=True)
class Case:
    """One failure: the guide message it must print (a unique part of it), the exit code,
    the command line and the environment. `{closed}`, `{busy}` and `{server}` are filled in."""

    message: str
    code: int
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


CLOSED = "redis://:hunter2@127.0.0.1:{closed}/0"
CASES = {
    "unreachable-status": Case("cannot reach Redis", 4, ("status",), {"REDIS_URL": CLOSED}),
    "unreachable-enqueue": Case(
        "cannot reach Redis", 4, ("enqueue", "echo"), {"REDIS_URL": CLOSED}
    ),
    "unreachable-job": Case("cannot reach Redis", 4, ("job", "j1"), {"REDIS_URL": CLOSED}),
    "unreachable-cancel": Case("cannot reach Redis", 4, ("cancel", "j1"), {"REDIS_URL": CLOSED}),
    "unreachable-dead": Case("cannot reach Redis", 4, ("dead", "list"), {"REDIS_URL": CLOSED}),
    "credentials": Case(
        "refused the credentials", 4, ("status",), {"REDIS_URL": "redis://nobody:wrong@{server}/0"}
    ),
    "wrongtype": Case("answered with an error", 1, ("dead", "list"), {"WORKER_QUEUE": "taken"}),
    "bad-variable": Case(
        "<VARIABLE>=<value> is not valid", 2, ("status",), {"WORKER_CONCURRENCY": "0"}
    ),
    "redis-port": Case(
        "a port from 1 to 65535", 2, ("status",), {"REDIS_URL": "redis://127.0.0.1:99999/0"}
    ),
    "flag-concurrency": Case("<--flag> <value>", 2, ("run", "--concurrency", "0")),
    "flag-http-port": Case("<--flag> <value>", 2, ("run", "--http-port", "99999")),
    "flag-redis-url": Case("<--flag> <value>", 2, ("--redis-url", "http://x:6379", "status")),
    "flag-count": Case("<--flag> <value>", 2, ("enqueue", "echo", "--count", "0")),
    "flag-payload": Case("<--flag> <value>", 2, ("enqueue", "echo", "--payload", "[1]")),
    "rate-limit-typo": Case(
        "WORKER_RATE_LIMITS", 2, ("run",), {"WORKER_RATE_LIMITS": '{"ecko": "1/s"}'}
    ),
    "port-in-use": Case("already listens", 2, ("run",), {"WORKER_HTTP_PORT": "{busy}"}),
    "host-unresolvable": Case(
        "cannot resolve",
        2,
        ("run",),
        {"WORKER_HTTP_HOST": "no-such-host.invalid", "WORKER_HTTP_PORT": "0"},
    ),
    "host-not-here": Case(
        "no network interface",
        2,
        ("run",),
        {"WORKER_HTTP_HOST": "192.0.2.1", "WORKER_HTTP_PORT": "0"},
    ),
    "no-module": Case(
        "no module named", 2, ("run",), {"WORKER_WORKFLOWS": "myapp.flows:WORKFLOWS"}
    ),
    "syntax-error": Case("syntax error", 2, ("run",), {"WORKER_WORKFLOWS": "broken:WORKFLOWS"}),
    "missing-dependency": Case(
        "which is not installed", 2, ("run",), {"WORKER_WORKFLOWS": "needs:WORKFLOWS"}
    ),
    "import-raises": Case(
        "importing <module> raised", 2, ("run",), {"WORKER_WORKFLOWS": "raises:WORKFLOWS"}
    ),
    "no-attribute": Case(
        "has no <attribute>", 2, ("run",), {"WORKER_WORKFLOWS": "workflow_worker.builtin:FLOWS"}
    ),
    "not-a-workflow": Case(
        "workflow <name> is", 2, ("run",), {"WORKER_WORKFLOWS": "streams:WORKFLOWS"}
    ),
    "lifespan-raises": Case(
        "WORKER_LIFESPAN=<path>",
        2,
        ("run",),
        {"WORKER_LIFESPAN": "life:lifespan", "WORKER_HTTP_PORT": "0"},
    ),
    "payload-too-large": Case(
        "WORKER_MAX_PAYLOAD_BYTES",
        1,
        ("enqueue", "echo", "--payload", '{"text": "' + "x" * 100 + '"}'),
        {"WORKER_MAX_PAYLOAD_BYTES": "64"},
    ),
}


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    for name, text in APP_FILES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another process (this test) listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _filled(text: str, fill: dict[str, str]) -> str:
    for key, value in fill.items():
        text = text.replace("{" + key + "}", value)
    return text


def console(redis_url: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed `workflow-worker` script, run from `cwd` as a user would."""
    return subprocess.run(
        [str(SCRIPT), *args],
        env=worker_env(redis_url, **env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_guide_message_is_exercised() -> None:
    """Each message in the guide is the one message of at least one case below, and each case
    names exactly one message of the guide."""
    named = {heading(case.message) for case in CASES.values()}
    assert named == set(guide_messages())


@pytest.mark.parametrize("name", sorted(CASES))
def test_failure_prints_its_guide_line(
    name: str, redis_url: str, app_dir: Path, busy_port: int, sync_redis: redis.Redis
) -> None:
    """The failure ends with the guide's line as the only line on stderr (no traceback, the
    Redis password hidden) and the documented exit code."""
    case = CASES[name]
    sync_redis.set("{taken}:dead", "not a list")
    fill = {"closed": str(free_port()), "busy": str(busy_port), "server": redis_url.split("/")[2]}
    env = {key: _filled(value, fill) for key, value in case.env.items()}
    args = [_filled(arg, fill) for arg in case.args]
    proc = console(redis_url, *args, cwd=app_dir, **env)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert pattern(heading(case.message)).fullmatch(lines[0]), lines[0]
    assert proc.returncode == case.code, proc.stderr
    assert "hunter2" not in proc.stderr
    assert "Traceback" not in proc.stdout


def test_unreachable_redis_names_the_url_and_the_cause(redis_url: str, tmp_path: Path) -> None:
    """The line names REDIS_URL with its password hidden and the system's reason; with
    `--redis-url` it names the flag instead."""
    port = free_port()
    proc = console(redis_url, "status", cwd=tmp_path, REDIS_URL=f"redis://:pw@127.0.0.1:{port}/0")
    line = proc.stderr.strip()
    assert line.startswith(
        f"workflow-worker: cannot reach Redis at REDIS_URL=redis://:***@127.0.0.1:{port}/0: "
    )
    assert "refused" in line.lower()
    proc = console(redis_url, "--redis-url", f"redis://127.0.0.1:{port}", "status", cwd=tmp_path)
    assert f"cannot reach Redis at --redis-url redis://127.0.0.1:{port}: " in proc.stderr
    assert proc.returncode == 4


def test_debug_adds_the_traceback(redis_url: str, tmp_path: Path) -> None:
    """`--debug` prints the traceback above the same one-line message and keeps the exit code."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = console(redis_url, "--debug", "job", "j1", cwd=tmp_path, REDIS_URL=url)
    assert proc.returncode == 4
    assert "Traceback (most recent call last)" in proc.stderr
    assert "redis.exceptions.ConnectionError" in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("workflow-worker: cannot reach Redis at REDIS_URL=")
    )


UNEXPECTED = "workflow-worker: unexpected error: <error> (run with --debug for the traceback)"


def test_an_unexpected_error_is_one_line_that_points_at_debug() -> None:
    """An exception the command line has no explanation for is reported as the guide's
    `unexpected error` line, exit 1."""
    line, code = failure(KeyError("missing"), "redis://x:6379/0", "REDIS_URL")
    assert code == 1
    assert f"**`{UNEXPECTED}`**" in GUIDE.read_text()
    assert pattern(UNEXPECTED).fullmatch(line)
    assert "KeyError: 'missing'" in line
