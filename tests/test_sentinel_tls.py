"""Redis Sentinel over TLS, with passwords on the primary and on the Sentinel: a TLS-only primary
and a TLS-only sentinel (Debian's redis-server and redis-sentinel), a real worker process and both
clients going through them, as the chart deploys it with `redis.mode: sentinel` and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import yaml

from tests.chart_helpers import pod_environment, render
from tests.conftest import ROOT, WorkerProcess, wait_until, worker_env
from tests.servers import free_port
from tests.tls_helpers import Certs, TlsRedis, make_certs
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.client import Client, SyncClient
from workflow_worker.settings import Settings

MASTER = "tlsmaster"
PRIMARY_PASSWORD = "primary-secret-7c1f"
SENTINEL_PASSWORD = "sentinel-secret-91ab"
DATABASE = 3
KEYS = QueueKeys.for_queue("workflow:queue")


def _sentinel_binary() -> str:
    """Debian's redis-sentinel: the only sentinel here built with TLS."""
    found = shutil.which("redis-sentinel")
    if found is None:
        raise RuntimeError("this test needs Debian's redis-sentinel (scripts/install-tools.sh)")
    return found


class TlsSentinel:
    """A sentinel that accepts TLS only (client certificates required), asks for its own
    password, and reaches the primary over TLS with the primary's password."""

    def __init__(
        self, folder: Path, certs: Certs, primary_port: int, password: str = SENTINEL_PASSWORD
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.certs = certs
        self.password = password
        self.port = free_port()
        self.log = folder / "sentinel.log"
        conf = folder / "sentinel.conf"
        # The server certificate is for serverAuth only: the sentinel presents the client one.
        conf.write_text(
            f"port 0\ntls-port {self.port}\nbind 127.0.0.1\ndir {folder}\n"
            f"tls-cert-file {certs.server_cert}\ntls-key-file {certs.server_key}\n"
            f"tls-client-cert-file {certs.client_cert}\ntls-client-key-file {certs.client_key}\n"
            f"tls-ca-cert-file {certs.ca}\ntls-auth-clients yes\ntls-replication yes\n"
            f"requirepass {password}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 1\n"
            f"sentinel auth-pass {MASTER} {PRIMARY_PASSWORD}\n"
            f"sentinel down-after-milliseconds {MASTER} 5000\n"
        )
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [_sentinel_binary(), str(conf)], stdout=log, stderr=subprocess.STDOUT
            )

    def client(self) -> redis.Redis:
        c = self.certs
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            ssl=True,
            ssl_ca_certs=str(c.ca),
            ssl_certfile=str(c.client_cert),
            ssl_keyfile=str(c.client_key),
            password=self.password,
            socket_timeout=2,
            decode_responses=True,
        )

    def sees_primary(self) -> bool:
        """True once the sentinel has connected to the primary and found it up."""
        with contextlib.suppress(redis.RedisError, OSError), self.client() as c:
            reply = c.execute_command("SENTINEL", "MASTER", MASTER)
            # A flat [key, value, ...] list over RESP2, a map over RESP3.
            state = (
                dict(zip(reply[::2], reply[1::2], strict=True))
                if isinstance(reply, list)
                else reply
            )
            return bool(state.get("flags") == "master" and state.get("role-reported") == "master")
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@dataclass
class TlsSentinelStack:
    certs: Certs
    primary: TlsRedis
    sentinel: TlsSentinel

    def env(self, scheme: str = "rediss", **more: str) -> dict[str, str]:
        """What the chart puts in the pod for Sentinel + TLS, passwords from the Secret."""
        c = self.certs
        env = {
            "REDIS_MODE": "sentinel",
            "REDIS_SENTINEL_MASTER": MASTER,
            "REDIS_PASSWORD": PRIMARY_PASSWORD,
            "REDIS_SENTINEL_PASSWORD": self.sentinel.password,
        }
        if scheme == "rediss":
            env["REDIS_TLS_CA_FILE"] = str(c.ca)
            env["REDIS_TLS_CERT_FILE"] = str(c.client_cert)
            env["REDIS_TLS_KEY_FILE"] = str(c.client_key)
        url = f"{scheme}://127.0.0.1:{self.sentinel.port}/{DATABASE}"
        return worker_env(url, **env, **more)

    def settings(self, **more: str) -> Settings:
        return Settings.from_env(self.env(**more))


@contextlib.contextmanager
def _tls_stack(tmp_path: Path, sentinel_password: str) -> Iterator[TlsSentinelStack]:
    certs = make_certs(tmp_path / "pki")
    primary = TlsRedis(tmp_path, certs, password=PRIMARY_PASSWORD)
    primary.start()
    sentinel: TlsSentinel | None = None
    try:
        sentinel = TlsSentinel(tmp_path / "sentinel", certs, primary.port, sentinel_password)
        try:
            wait_until(sentinel.sees_primary, timeout=30, interval=0.2)
        except AssertionError:
            raise AssertionError(sentinel.log.read_text()[-3000:]) from None
        yield TlsSentinelStack(certs, primary, sentinel)
    finally:
        if sentinel is not None:
            sentinel.stop()
        primary.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[TlsSentinelStack]:
    """A TLS primary with a password and one TLS sentinel with its own password watching it."""
    with _tls_stack(tmp_path, SENTINEL_PASSWORD) as built:
        yield built


@pytest.fixture
def shared_password_stack(tmp_path: Path) -> Iterator[TlsSentinelStack]:
    """The same, with the primary's password on the sentinel too (one Secret key for both, as
    the chart's `redis.sentinel.passwordFromSecret` reads it)."""
    with _tls_stack(tmp_path, PRIMARY_PASSWORD) as built:
        yield built


def _refused(settings: Settings) -> BaseException | None:
    """The error a ping through the sync client gets (None when it succeeds)."""
    try:
        with SyncClient(settings) as client:
            client.redis.ping()
    except (redis.RedisError, OSError) as exc:
        return exc
    return None


async def _async_round_trip(settings: Settings) -> object:
    async with Client(settings) as client:
        job = await client.enqueue("echo", {"via": "asyncio"})
        return await client.result(job, timeout=20)


def test_worker_and_clients_run_jobs_through_a_tls_sentinel(
    stack: TlsSentinelStack, tmp_path: Path
) -> None:
    """Over rediss:// to a TLS sentinel with its own password, a worker becomes ready and runs
    jobs that the sync and asyncio clients enqueue, in the URL's database on the TLS primary."""
    worker = WorkerProcess(stack.env(WORKER_CONCURRENCY="4"), tmp_path / "worker.log")
    try:
        try:
            worker.wait_ready(timeout=30)
        except RuntimeError:
            raise AssertionError(worker.log_path.read_text()[-3000:]) from None
        settings = stack.settings()
        with SyncClient(settings) as client:
            job = client.enqueue("echo", {"via": "sync"})
            assert client.result(job, timeout=20) == {"via": "sync"}
        assert asyncio.run(_async_round_trip(settings)) == {"via": "asyncio"}
        with stack.primary.client() as primary:
            primary.select(DATABASE)
            assert primary.hget(KEYS.job(job), "state") == b"success"
        assert worker.get("/readyz")[0] == 200
        assert PRIMARY_PASSWORD not in worker.log_path.read_text()
        assert SENTINEL_PASSWORD not in worker.log_path.read_text()
    finally:
        worker.stop()


def test_plaintext_and_missing_sentinel_password_are_refused(stack: TlsSentinelStack) -> None:
    """redis:// to the TLS sentinel fails, as does TLS without the Sentinel password; the
    complete settings connect."""
    assert _refused(stack.settings()) is None
    plaintext = _refused(Settings.from_env(stack.env(scheme="redis")))
    assert isinstance(plaintext, redis.ConnectionError | redis.TimeoutError), plaintext
    env = stack.env()
    del env["REDIS_SENTINEL_PASSWORD"]
    no_password = _refused(Settings.from_env(env))
    assert no_password is not None
    assert "uthenticat" in str(no_password) or "NOAUTH" in str(no_password), no_password


def test_a_worker_without_tls_to_the_sentinel_never_becomes_ready(
    stack: TlsSentinelStack, tmp_path: Path
) -> None:
    """A worker that speaks plaintext to the TLS sentinel stays alive but not ready."""
    worker = WorkerProcess(stack.env(scheme="redis"), tmp_path / "plain.log")
    try:
        wait_until(lambda: worker.get("/healthz")[0] == 200, timeout=20)
        time.sleep(2)
        assert worker.proc.poll() is None
        assert worker.get("/readyz")[0] == 503
    finally:
        worker.stop()


def test_the_charts_sentinel_tls_settings_make_a_ready_worker(
    shared_password_stack: TlsSentinelStack, tmp_path: Path
) -> None:
    """The environment the chart renders for Sentinel + TLS (ConfigMap, Secret references, the CA
    mount, a client certificate through extraVolumes and env) runs a ready worker through the
    TLS sentinel; the same chart values without the Sentinel password leave it unready."""
    stack = shared_password_stack
    c = stack.certs
    values = {
        "redis": {
            "mode": "sentinel",
            "host": "127.0.0.1",
            "database": DATABASE,
            "existingSecret": "redis-auth",
            "tls": {"enabled": True, "caSecret": "redis-ca"},
            "sentinel": {
                "masterName": MASTER,
                "port": stack.sentinel.port,
                "passwordFromSecret": True,
            },
        },
        "extraVolumes": [{"name": "client-cert", "secret": {"secretName": "redis-client"}}],
        "extraVolumeMounts": [{"name": "client-cert", "mountPath": "/etc/redis-client"}],
        "env": [
            {"name": "REDIS_TLS_CERT_FILE", "value": "/etc/redis-client/tls.crt"},
            {"name": "REDIS_TLS_KEY_FILE", "value": "/etc/redis-client/tls.key"},
        ],
    }
    secrets = {
        "redis-auth": {"redis-password": PRIMARY_PASSWORD},
        "redis-ca": {"ca.crt": c.ca.read_text()},
        "redis-client": {"tls.crt": c.client_cert.read_text(), "tls.key": c.client_key.read_text()},
    }
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    manifests = render(values=[values_file])
    env = pod_environment(manifests, secrets, tmp_path / "pod")
    assert env["REDIS_URL"] == f"rediss://127.0.0.1:{stack.sentinel.port}/{DATABASE}"
    base = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    worker = WorkerProcess({**base, **env}, tmp_path / "chart-worker.log")
    try:
        try:
            worker.wait_ready(timeout=30)
        except RuntimeError:
            raise AssertionError(worker.log_path.read_text()[-3000:]) from None
        with SyncClient(stack.settings()) as client:
            job = client.enqueue("echo", {"via": "chart"})
            assert client.result(job, timeout=20) == {"via": "chart"}
    finally:
        worker.stop()
    env.pop("REDIS_SENTINEL_PASSWORD")
    assert _refused(Settings.from_env(env)) is not None
