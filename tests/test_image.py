"""The container image, built from the real Dockerfile and run the way the chart runs the pod.

podman (Debian's, no Docker engine) builds the Dockerfile over a local Debian base, then runs it
with a read-only root filesystem, no capabilities and the image's own user, against this test's
Redis on 127.0.0.1. One test does it all because the build takes a minute or two: split over
tests, pytest-xdist would build the image once per process that picked one up. `just test` runs
it after the parallel suite, alone, so the build does not slow timing-sensitive tests.

Missing tools are a failure, never a skip (scripts/install-tools.sh installs them, as root): a
skip would let CI pass without the image ever being built. Deselect it on purpose with
`-m "not image"` on a machine that cannot run podman.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.image_helpers import Podman, base_tarball, missing_tools, podman_session
from tests.servers import free_port
from workflow_worker.engine.keys import QueueKeys

pytestmark = [pytest.mark.image, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
QUEUE = "workflow:queue"
UID = "10001"
BASE_TAG = "localhost/workflow-worker-base:test"
IMAGE_TAG = "localhost/workflow-worker:test"


def _http(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait(what: str, check: Callable[[], bool], timeout: float, logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n--- logs ---\n{logs()}")


def _state(client: redis.Redis, job_id: str) -> str:
    raw = client.hget(QueueKeys.for_queue(QUEUE).job(job_id), "state")
    return raw.decode() if isinstance(raw, bytes) else ""


def _enqueue(client: redis.Redis, job_id: str, workflow: str, payload: dict[str, Any]) -> None:
    client.lpush(QUEUE, json.dumps({"id": job_id, "workflow": workflow, "payload": payload}))


def _check_image_config(podman: Podman) -> None:
    """The image's own metadata: numeric non-root user, entrypoint, stop signal."""
    config = json.loads(podman("image", "inspect", IMAGE_TAG).stdout)[0]["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["workflow-worker"]
    assert config["Cmd"] == ["run"]
    assert config["StopSignal"] == "SIGTERM"


def _check_contents(podman: Podman, name: str) -> None:
    """As run: the image's user, no build secret or compiler left in the image."""
    assert podman.exec_(name, "id", "-u").stdout.strip() == UID
    status = podman.exec_(name, "cat", "/proc/1/status").stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uid_line.split()[1:]) == {UID}, uid_line
    leftovers = podman.exec_(
        name, "sh", "-c", "ls /etc/pip.conf /run/secrets /usr/bin/gcc /usr/bin/cc 2>/dev/null"
    )
    assert leftovers.stdout.strip() == "", leftovers.stdout


def _check_read_only(podman: Podman, name: str) -> None:
    """Writes fail everywhere but /tmp."""
    for path in ("/probe", "/opt/venv/probe", "/app/probe"):
        result = podman.exec_(name, "sh", "-c", f"echo x > {path}")
        assert result.returncode != 0, path
        assert "Read-only file system" in result.stderr, result.stderr
    assert podman.exec_(name, "sh", "-c", "echo x > /tmp/probe").returncode == 0


def _check_drain(
    podman: Podman, name: str, port: int, client: redis.Redis, logs: Callable[[], str]
) -> None:
    """`podman stop` (SIGTERM) lets a running job finish, takes nothing new, exits 0."""
    keys = QueueKeys.for_queue(QUEUE)
    _enqueue(client, "img-sleep", "sleep", {"seconds": 6})
    _wait("the long job to start", lambda: _state(client, "img-sleep") == "running", 30, logs)
    started = time.monotonic()
    stop = podman.popen("stop", "--time", "60", name)
    _wait("/readyz to turn 503", lambda: _http(port, "/readyz")[0] == 503, 10, logs)
    assert _state(client, "img-sleep") == "running", "the drain must not cut the job short"
    _enqueue(client, "img-late", "echo", {})
    _, stderr = stop.communicate(timeout=90)
    assert stop.returncode == 0, stderr
    assert time.monotonic() - started >= 3, "podman stop returned before the job could finish"
    state = json.loads(podman("inspect", name).stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    assert _state(client, "img-sleep") == "success"
    assert client.hlen(keys.processing) == 0
    assert client.llen(QUEUE) == 1, "a job enqueued during the drain waits for another worker"
    assert _state(client, "img-late") in ("", "queued")
    records = [json.loads(line) for line in logs().splitlines() if line.startswith("{")]
    messages = [r.get("message") for r in records]
    assert "draining" in messages
    assert "worker stopped" in messages


# A first run also makes the cached base (up to 15 minutes on a busy machine), then builds.
@pytest.mark.timeout(1800)
def test_image_builds_and_runs_locked_down(redis_url: str) -> None:
    """The Dockerfile builds; the image runs as UID 10001 on a read-only root filesystem, answers
    /healthz and /readyz, runs a job from Redis, and drains a running job on `podman stop`."""
    missing = missing_tools()
    if missing or os.geteuid() != 0:
        pytest.fail(
            f"the image test needs root and {', '.join(missing) or 'podman'}: run "
            "scripts/install-tools.sh as root (just tools), or deselect with -m 'not image'",
            pytrace=False,
        )
    tarball = base_tarball()
    with podman_session() as podman:
        podman.import_base(tarball, BASE_TAG)
        seconds = podman.build(REPO, IMAGE_TAG, {"BASE_IMAGE": BASE_TAG}, timeout=600)
        print(f"\nimage built in {seconds:.0f} s")
        _check_image_config(podman)
        name = f"wfw-test-{secrets.token_hex(4)}"
        port = free_port()
        podman.run_detached(
            IMAGE_TAG,
            name,
            {
                "REDIS_URL": redis_url,
                "WORKER_HTTP_HOST": "127.0.0.1",
                "WORKER_HTTP_PORT": str(port),
                "WORKER_SHUTDOWN_TIMEOUT": "45",
                "WORKER_LOG_FORMAT": "json",
            },
        )

        def logs() -> str:
            result = podman.try_("logs", name)
            return result.stdout + result.stderr

        _wait("/healthz", lambda: _http(port, "/healthz") == (200, {"status": "ok"}), 60, logs)
        _wait("/readyz", lambda: _http(port, "/readyz")[0] == 200, 30, logs)
        _check_contents(podman, name)
        _check_read_only(podman, name)
        with redis.Redis.from_url(redis_url) as client:
            _enqueue(client, "img-echo", "echo", {"hello": "image"})
            _wait("the echo job", lambda: _state(client, "img-echo") == "success", 30, logs)
            result = client.hget(QueueKeys.for_queue(QUEUE).job("img-echo"), "result")
            assert json.loads(result or b"null") == {"hello": "image"}
            _check_drain(podman, name, port, client, logs)
