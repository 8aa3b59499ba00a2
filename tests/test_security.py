"""Security: a least-privilege Redis ACL user, TLS with a test CA, no payload data over HTTP,
JSON only, and a worker with wrong credentials that stays up and unready.

The KEDA TriggerAuthentication reading the same Secret as the worker is proven by
tests/test_chart.py::test_keda_shares_the_workers_secret; it is not repeated here.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT, WorkerProcess, wait_until, worker_env
from tests.servers import RedisServer
from tests.tls_helpers import TlsRedis, make_certs
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.client import SyncClient
from workflow_worker.settings import Settings

Q = "workflow:queue"
KEYS = QueueKeys.for_queue(Q)
USER = "workflow-worker"
PASSWORD = "s3cret-for-tests"
Spawn = Callable[..., WorkerProcess]


def documented_acl_rules() -> list[str]:
    """The ACL line of docs/guarantees.md, as ACL SETUSER rules, with the test's password."""
    text = (ROOT / "docs" / "guarantees.md").read_text()
    match = re.search(rf"^user {USER} (.+)$", text, re.MULTILINE)
    assert match, "docs/guarantees.md must carry the worker's ACL line"
    rules = match.group(1).split()
    assert ">CHANGE-ME" in rules
    return [f">{PASSWORD}" if r == ">CHANGE-ME" else r for r in rules]


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[tuple[RedisServer, redis.Redis]]:
    """A private server with the documented worker user (admin stays the default user)."""
    with server_with_acl_user(tmp_path, documented_acl_rules()) as started:
        yield started


@contextlib.contextmanager
def server_with_acl_user(
    tmp_path: Path, rules: list[str]
) -> Iterator[tuple[RedisServer, redis.Redis]]:
    """A private server whose user USER has exactly `rules`, its ACL log empty, and an admin
    client (the default user); stopped afterwards."""
    server = RedisServer(tmp_path / "acl")
    server.start()
    admin = redis.Redis(port=server.port)
    try:
        try:
            # Redis >= 7.2 and Valkey know CLIENT SETINFO, which redis-py sends on connect.
            acl(admin, "SETUSER", USER, "reset", *rules, "+client|setinfo")
        except redis.exceptions.ResponseError:
            acl(admin, "SETUSER", USER, "reset", *rules)
        acl(admin, "LOG", "RESET")
        yield server, admin
    finally:
        admin.close()
        server.stop()


def user_url(server: RedisServer, password: str = PASSWORD) -> str:
    return f"redis://{USER}:{password}@127.0.0.1:{server.port}/0"


class Workers:
    """Worker subprocesses of one test, always stopped."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[WorkerProcess] = []

    def spawn(
        self, url: str, *, wait_ready: bool = True, env: dict[str, str] | None = None, **more: str
    ) -> WorkerProcess:
        settings = {**(env or {}), **more}
        handle = WorkerProcess(worker_env(url, **settings), self.folder / f"w{len(self.procs)}.log")
        self.procs.append(handle)
        if wait_ready:
            handle.wait_ready()
        return handle

    def close(self) -> None:
        for handle in self.procs:
            if handle.proc.poll() is None:
                handle.proc.kill()
                handle.proc.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    group = Workers(tmp_path)
    yield group
    group.close()


def acl(admin: redis.Redis, *args: str) -> object:
    return admin.execute_command("ACL", *args)  # type: ignore[no-untyped-call]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflow_worker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _state(client: SyncClient, job_id: str) -> str | None:
    record = client.status(job_id)
    return None if record is None else record.get("state")


def _lifecycle(client: SyncClient, workers: Workers, url: str) -> None:
    """Success, retry then dead letter, poison message, crash re-delivery, drain requeue."""
    first = workers.spawn(url, WORKER_CONCURRENCY="4", WORKER_SHUTDOWN_TIMEOUT="0.3")
    ok = client.enqueue("echo", {"x": 1})
    failing = client.enqueue("fail", {}, max_attempts=2)
    client.redis.lpush(Q, b"not json at all")
    assert client.result(ok, timeout=20) == {"x": 1}
    wait_until(lambda: _state(client, failing) == "failure", timeout=20)
    slow = client.enqueue("sleep", {"seconds": 2})
    wait_until(lambda: _state(client, slow) == "running", timeout=20)
    first.proc.kill()
    first.proc.wait()
    second = workers.spawn(url, WORKER_CONCURRENCY="4", WORKER_SHUTDOWN_TIMEOUT="0.3")
    assert client.result(slow, timeout=30) == {"slept": 2.0}
    long = client.enqueue("sleep", {"seconds": 30})
    wait_until(lambda: _state(client, long) == "running", timeout=20)
    second.signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    assert client.redis.llen(Q) == 1, "the drained job is back on the queue"
    assert client.redis.llen(KEYS.dead) == 2


def test_acl_user_runs_the_whole_lifecycle(
    acl_server: tuple[RedisServer, redis.Redis], workers: Workers
) -> None:
    """With only the documented ACL, workers, the client and the CLI run every path, and Redis
    refuses none of their commands (its ACL LOG holds nothing but each worker's one attempt to
    read `appendfsync`, which the least-privilege user may not)."""
    server, admin = acl_server
    url = user_url(server)
    settings = Settings.from_env({"REDIS_URL": url})
    with SyncClient(settings) as client:
        _lifecycle(client, workers, url)
    env = worker_env(url)
    for args in (
        ["status", "--json"],
        ["enqueue", "echo", "--payload", '{"n": 2}'],
        ["dead", "list"],
        ["dead", "requeue", "0"],
    ):
        done = cli(env, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    status = json.loads(cli(env, "status", "--json").stdout)
    assert status["dead"] == 1
    assert status["queued"] == 3
    log = [_fields(entry) for entry in _entries(acl(admin, "LOG"))]
    denied = [entry for entry in log if entry.get("object") != "config|get"]
    assert denied == [], f"Redis refused commands of the documented ACL user: {denied}"


def _entries(value: object) -> list[object]:
    assert isinstance(value, list)
    return value


def _fields(entry: object) -> dict[str, object]:
    """One ACL LOG entry as a dict with text names and values."""
    assert isinstance(entry, dict)
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else v
        )
        for k, v in entry.items()
    }


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("CONFIG", "GET", "requirepass"),
        ("KEYS", "*"),
        ("EVAL", "return 1", "0"),
        ("GET", "someone-elses-key"),
        ("LPUSH", "another:queue", "x"),
        ("ACL", "WHOAMI"),
        ("SHUTDOWN",),
        ("SCRIPT", "FLUSH"),
        ("SUBSCRIBE", "news"),
    ],
)
def test_acl_user_is_refused_everything_else(
    acl_server: tuple[RedisServer, redis.Redis], command: tuple[str, ...]
) -> None:
    """The worker's user cannot flush, reconfigure, scan, run ad-hoc scripts or touch other keys."""
    server, _ = acl_server
    with (
        redis.Redis.from_url(user_url(server)) as client,
        pytest.raises(redis.exceptions.NoPermissionError),
    ):
        client.execute_command(*command)


def test_acl_scripts_cannot_reach_keys_outside_the_queue(
    acl_server: tuple[RedisServer, redis.Redis],
) -> None:
    """ACLs bind inside Lua too: a script the user loads still cannot touch other keys."""
    server, _ = acl_server
    with redis.Redis.from_url(user_url(server)) as client:
        sha = client.script_load("return redis.call('SET', KEYS[1], 'x')")
        with pytest.raises(redis.exceptions.ResponseError, match=r"(?i)permission|NOPERM"):
            client.evalsha(sha, 1, "elsewhere")
        assert client.evalsha(sha, 1, KEYS.job("ok")) == b"OK"


def test_wrong_credentials_keep_the_worker_up_and_unready(
    acl_server: tuple[RedisServer, redis.Redis], workers: Workers
) -> None:
    """A worker with a wrong password stays alive (healthz 200), fails readiness with a reason,
    logs the auth failure with backoff instead of crash-looping, and recovers once it is fixed."""
    server, admin = acl_server
    worker = workers.spawn(user_url(server, "wrong-password"), wait_ready=False)
    wait_until(lambda: worker.get("/healthz")[0] == 200, timeout=20)
    time.sleep(4)
    assert worker.proc.poll() is None
    assert worker.get("/healthz")[0] == 200
    status, body = worker.get("/readyz")
    assert status == 503
    assert json.loads(body)["status"] == "not ready"
    auth_lines = [
        r for r in worker.log_records() if re.search(r"(?i)auth|WRONGPASS", r.get("message", ""))
    ]
    assert auth_lines, worker.log()
    assert auth_lines[0]["level"] == "error"
    # Backoff, not a tight loop: 0.1 s doubling gives about six attempts in five seconds.
    assert len(auth_lines) <= 10, len(auth_lines)
    assert "wrong-password" not in worker.log(), "the password must never be logged"
    acl(admin, "SETUSER", USER, ">wrong-password")
    wait_until(lambda: worker.get("/readyz")[0] == 200, timeout=30)


def test_tls_with_a_test_ca_and_client_certificates(tmp_path: Path, workers: Workers) -> None:
    """Over rediss:// with the test CA (and a client certificate) a worker runs jobs; a client
    trusting another CA, or presenting no certificate, is refused."""
    certs = make_certs(tmp_path / "pki")
    server = TlsRedis(tmp_path, certs)
    server.start()
    try:
        env = {
            "REDIS_TLS_CA_FILE": str(certs.ca),
            "REDIS_TLS_CERT_FILE": str(certs.client_cert),
            "REDIS_TLS_KEY_FILE": str(certs.client_key),
        }
        worker = workers.spawn(server.url, env=env)
        settings = Settings.from_env({"REDIS_URL": server.url, **env})
        with SyncClient(settings) as client:
            job = client.enqueue("echo", {"over": "tls"})
            assert client.result(job, timeout=20) == {"over": "tls"}
        assert worker.get("/readyz")[0] == 200
        wrong_ca = Settings.from_env({**env, "REDIS_URL": server.url})
        wrong_ca = wrong_ca.with_overrides(redis_tls_ca_file=str(certs.other_ca))
        with SyncClient(wrong_ca) as client, pytest.raises(redis.exceptions.ConnectionError):
            client.redis.ping()
        no_cert = Settings.from_env({"REDIS_URL": server.url, "REDIS_TLS_CA_FILE": str(certs.ca)})
        with SyncClient(no_cert) as client, pytest.raises(redis.exceptions.ConnectionError):
            client.redis.ping()
        plain = f"redis://127.0.0.1:{server.port}/0"
        with (
            redis.Redis.from_url(plain, socket_timeout=2) as client,
            pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)),
        ):
            client.ping()
    finally:
        server.stop()


SECRET = "sk-live-7f3e9c1d-DO-NOT-LEAK"


def test_http_endpoints_expose_no_payload_data(
    spawn_worker: Spawn, sync_redis: redis.Redis
) -> None:
    """With secret-bearing jobs running, failed and dead-lettered, /metrics /healthz /readyz
    never show payload data."""
    worker = spawn_worker(WORKER_CONCURRENCY="4")
    jobs = [
        {"workflow": "sleep", "payload": {"seconds": 3, "api_key": SECRET}, "id": "s1"},
        {"workflow": "fail", "payload": {"message": SECRET}, "id": "s2", "max_attempts": 1},
        {"workflow": "no-such-" + SECRET, "payload": {"token": SECRET}, "id": "s3"},
        {"workflow": "echo", "payload": {SECRET: SECRET}, "id": "s4"},
    ]
    for job in jobs:
        sync_redis.lpush(Q, json.dumps(job))
    wait_until(lambda: sync_redis.hget(KEYS.job("s1"), "state") == b"running")
    wait_until(lambda: sync_redis.llen(KEYS.dead) == 2)
    time.sleep(0.5)  # let the gauges refresh with everything in place
    for path in ("/metrics", "/healthz", "/readyz"):
        status, body = worker.get(path)
        assert status == 200, (path, body)
        assert SECRET not in body, path
        assert "sk-live" not in body, path


def test_json_only_never_pickle() -> None:
    """No module of the worker imports pickle or another code-executing deserializer."""
    banned = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve"}
    banned |= {"jsonpickle"}
    for path in sorted((ROOT / "worker").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in banned, f"{path}: imports {name}"
        assert "pickle" not in path.read_text().lower(), path
