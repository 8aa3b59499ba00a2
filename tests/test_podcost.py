"""Pod deletion cost: the PATCH the worker sends, checked against the API's documented contract
(tests/kube_api.py, over real HTTPS), its rate limit, and failures that never reach the jobs."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import worker_env
from tests.kube_api import DELETION_COST, FakeKubeApi, serve_tls
from tests.servers import free_port
from tests.tls_helpers import Certs, make_certs
from workflow_worker.builtin import WORKFLOWS
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.errors import ConfigError
from workflow_worker.ops import podcost
from workflow_worker.ops.podcost import ANNOTATION, PodDeletionCost, PodTarget
from workflow_worker.settings import Settings

NAMESPACE, POD = "workflows", "worker-7d9f8-abcde"
TOKEN = "service-account-token-1"


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A test CA and a server certificate for 127.0.0.1, made once."""
    return make_certs(tmp_path_factory.mktemp("kube-certs"))


@dataclass
class Cluster:
    """The fake API server, the pod's service-account folder and its settings."""

    api: FakeKubeApi
    account: Path
    port: int
    registries: list[CollectorRegistry]

    def settings(self, **env: str) -> Settings:
        return Settings.from_env(
            {
                "WORKER_POD_DELETION_COST": "1",
                "WORKER_POD_DELETION_COST_INTERVAL": "1",
                "POD_NAME": POD,
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(self.port),
                **env,
            }
        )

    def loop(self, running: Callable[[], int], **env: str) -> PodDeletionCost:
        # One registry per loop, as one per worker process.
        self.registries.append(CollectorRegistry())
        cost = PodDeletionCost.from_settings(
            self.settings(**env), running, self.registries[-1], self.account
        )
        assert cost is not None
        return cost

    def sample(self, name: str, **labels: str) -> float:
        """A metric's value summed over every loop this test built."""
        return sum(r.get_sample_value(name, labels) or 0.0 for r in self.registries)


@pytest.fixture
async def cluster(certs: Certs, tmp_path: Path) -> AsyncIterator[Cluster]:
    """A running fake API server with this test's pod, and a mounted service account for it."""
    api = FakeKubeApi(token=TOKEN, rbac_namespaces={NAMESPACE})
    api.add_pod(NAMESPACE, POD, {"prometheus.io/scrape": "true"})
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN + "\n")
    (account / "ca.crt").write_bytes(certs.ca.read_bytes())
    (account / "namespace").write_text(NAMESPACE)
    port = free_port()
    runner, _ = await serve_tls(api, certs.server_cert, certs.server_key, port)
    yield Cluster(api, account, port, [])
    await runner.cleanup()


async def _sync(cost: PodDeletionCost) -> bool:
    context = ssl.create_default_context(cafile=str(cost.target.ca_file))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        return await cost.sync_once(session, context)


async def test_patch_follows_the_documented_contract(cluster: Cluster) -> None:
    """One PATCH of the pod's own path, bearer token, merge-patch body with the count as a string;
    the API accepts it and the pod's other annotations stay."""
    cost = cluster.loop(lambda: 3)
    assert await _sync(cost) is True
    [request] = cluster.api.requests
    assert request.method == "PATCH"
    assert request.path == f"/api/v1/namespaces/{NAMESPACE}/pods/{POD}"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/merge-patch+json"
    assert json.loads(request.body) == {"metadata": {"annotations": {ANNOTATION: "3"}}}
    assert ANNOTATION == DELETION_COST
    assert cluster.api.annotation(NAMESPACE, POD) == "3"
    annotations = cluster.api.pods[(NAMESPACE, POD)]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert cluster.sample("workflow_pod_deletion_cost") == 3
    assert cluster.sample("workflow_pod_deletion_cost_updates_total") == 1


async def test_unchanged_count_sends_nothing(cluster: Cluster) -> None:
    """A count equal to the last accepted one costs no request; a new count sends one."""
    count = [0]
    cost = cluster.loop(lambda: count[0])
    assert await _sync(cost) is True
    assert await _sync(cost) is False
    count[0] = 50
    assert await _sync(cost) is True
    assert len(cluster.api.requests) == 2
    assert cluster.api.annotation(NAMESPACE, POD) == "50"


@pytest.mark.parametrize(
    ("codes", "reason"),
    [([401], "unauthorized"), ([403], "forbidden"), ([404], "not_found"), ([500], "server_error")],
)
async def test_api_errors_are_counted_and_retried(
    cluster: Cluster, codes: list[int], reason: str
) -> None:
    """A refused PATCH is counted by reason, leaves the pod as it was, and the same value is sent
    again at the next sync, which succeeds."""
    cluster.api.fail_with = list(codes)
    cost = cluster.loop(lambda: 4)
    assert await _sync(cost) is False
    assert cluster.sample("workflow_pod_deletion_cost_errors_total", reason=reason) == 1
    assert cluster.api.annotation(NAMESPACE, POD) is None
    assert await _sync(cost) is True
    assert cluster.api.annotation(NAMESPACE, POD) == "4"


async def test_real_refusals_from_the_contract(cluster: Cluster) -> None:
    """The fake's own rules answer as the API would: a wrong token is 401, a pod in a namespace
    the Role does not cover is 403, a pod that is gone is 404."""
    cost = cluster.loop(lambda: 1)
    (cluster.account / "token").write_text("stolen")
    assert await _sync(cost) is False
    (cluster.account / "token").write_text(TOKEN)
    other = cluster.loop(lambda: 1, POD_NAMESPACE="elsewhere")
    assert await _sync(other) is False
    gone = cluster.loop(lambda: 1, POD_NAME="worker-gone")
    assert await _sync(gone) is False
    for reason in ("unauthorized", "forbidden", "not_found"):
        assert cluster.sample("workflow_pod_deletion_cost_errors_total", reason=reason) == 1


async def test_rotated_token_is_read_again(cluster: Cluster) -> None:
    """The token file is read for each PATCH, so the kubelet's rotation needs no restart."""
    count = [1]
    cost = cluster.loop(lambda: count[0])
    assert await _sync(cost) is True
    cluster.api.token = "service-account-token-2"
    (cluster.account / "token").write_text("service-account-token-2")
    count[0] = 2
    assert await _sync(cost) is True
    assert cluster.api.requests[-1].headers["Authorization"] == "Bearer service-account-token-2"


async def test_timeout_and_unreachable_api_are_counted(cluster: Cluster) -> None:
    """A hanging API server times out, a closed port fails to connect, an untrusted certificate
    fails TLS; each is counted and nothing raises."""
    cluster.api.hang_seconds = 1.5
    cost = cluster.loop(lambda: 1)
    cost.request_timeout = 0.3
    context = ssl.create_default_context(cafile=str(cost.target.ca_file))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as session:
        assert await cost.sync_once(session, context) is False
    assert cluster.sample("workflow_pod_deletion_cost_errors_total", reason="timeout") == 1
    closed = cluster.loop(lambda: 1, KUBERNETES_SERVICE_PORT=str(free_port()))
    assert await _sync(closed) is False
    assert cluster.sample("workflow_pod_deletion_cost_errors_total", reason="connection") == 1


async def test_untrusted_api_certificate_is_refused(cluster: Cluster, certs: Certs) -> None:
    """With a CA that did not sign the server's certificate, no PATCH is sent in clear."""
    (cluster.account / "ca.crt").write_bytes(certs.other_ca.read_bytes())
    cost = cluster.loop(lambda: 1)
    assert await _sync(cost) is False
    assert cluster.sample("workflow_pod_deletion_cost_errors_total", reason="tls") == 1
    assert cluster.api.requests == []


async def test_loop_is_rate_limited_and_settles_on_the_last_count(cluster: Cluster) -> None:
    """While the count changes every 10 ms, the loop sends at most one PATCH per interval, and the
    annotation ends equal to the count once it stops changing."""
    count = [0]
    cost = cluster.loop(lambda: count[0], WORKER_POD_DELETION_COST_INTERVAL="1")
    task = cost.start()
    started = time.monotonic()
    while time.monotonic() - started < 3.0:
        count[0] = (count[0] + 1) % 50
        await asyncio.sleep(0.01)
    count[0] = 17
    await asyncio.sleep(1.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    elapsed = time.monotonic() - started
    assert 2 <= len(cluster.api.requests) <= elapsed / 1.0 + 1
    assert cluster.api.annotation(NAMESPACE, POD) == "17"


async def test_loop_survives_errors_and_a_broken_count(cluster: Cluster) -> None:
    """Failing API calls and a count callable that raises neither end the loop nor escape it."""
    calls = [0]

    def running() -> int:
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("broken on purpose")
        return calls[0]

    cluster.api.fail_with = [500]
    cost = cluster.loop(running, WORKER_POD_DELETION_COST_INTERVAL="1")
    task = cost.start()
    await asyncio.sleep(3.5)
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert cluster.sample("workflow_pod_deletion_cost_errors_total", reason="server_error") == 1
    assert cluster.sample("workflow_pod_deletion_cost_updates_total") >= 1


async def test_worker_keeps_its_pod_annotation_and_its_jobs_are_unaffected(
    cluster: Cluster, start_worker: Any, aredis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker started with WORKER_POD_DELETION_COST=1 (app.py builds and starts the loop) sets
    its pod's annotation to its running jobs and back to 0; an API that answers 500 or hangs
    changes nothing for the jobs; the loop ends with the worker."""
    monkeypatch.setattr(podcost, "SERVICE_ACCOUNT_DIR", cluster.account)
    running = await start_worker(
        registry=WORKFLOWS,
        pod_deletion_cost=True,
        pod_deletion_cost_interval=1.0,
        pod_name=POD,
        kubernetes_service_host="127.0.0.1",
        kubernetes_service_port=str(cluster.port),
    )
    prom = running.worker.prom
    # Idle at start: the first sync writes 0.
    await _until(lambda: cluster.api.annotation(NAMESPACE, POD) == "0", 5)
    for i in range(3):
        await aredis.lpush(
            "workflow:queue",
            json.dumps({"id": f"s{i}", "workflow": "sleep", "payload": {"seconds": 2.5}}),
        )
    await _until(lambda: cluster.api.annotation(NAMESPACE, POD) == "3", 5)
    assert prom.get_sample_value("workflow_pod_deletion_cost") == 3
    cluster.api.fail_with = [500, 500]
    cluster.api.hang_seconds = 1.0
    keys = QueueKeys.for_queue("workflow:queue")

    async def all_succeeded() -> bool:
        states = [await aredis.hget(keys.job(f"s{i}"), "state") for i in range(3)]
        return states == [b"success"] * 3

    await _until_async(all_succeeded, 10)
    cluster.api.hang_seconds = 0
    await _until(lambda: cluster.api.annotation(NAMESPACE, POD) == "0", 8)
    errors = prom.get_sample_value(
        "workflow_pod_deletion_cost_errors_total", {"reason": "server_error"}
    )
    assert errors == 2
    running.worker.request_stop()
    assert await asyncio.wait_for(running.task, 30) == 0
    sent = len(cluster.api.requests)
    await asyncio.sleep(1.5)
    assert len(cluster.api.requests) == sent, "the loop outlived the worker"


# The worker process as `workflow-worker run` starts it, with the service account read from the
# test's folder instead of /var/run/secrets/kubernetes.io/serviceaccount.
LAUNCHER = """
import sys
from pathlib import Path
from workflow_worker.ops import podcost
podcost.SERVICE_ACCOUNT_DIR = Path(sys.argv.pop(1))
from workflow_worker.cli import main
sys.exit(main())
"""


def _spawn(
    cluster: Cluster, redis_url: str, tmp_path: Path, account: Path, port: int
) -> subprocess.Popen[bytes]:
    launcher = tmp_path / "launch_worker.py"
    launcher.write_text(LAUNCHER)
    env = worker_env(
        redis_url,
        WORKER_HTTP_PORT=str(port),
        WORKER_POD_DELETION_COST="1",
        WORKER_POD_DELETION_COST_INTERVAL="1",
        POD_NAME=POD,
        KUBERNETES_SERVICE_HOST="127.0.0.1",
        KUBERNETES_SERVICE_PORT=str(cluster.port),
    )
    # Output to a file: a pipe nobody reads would block a long-running worker once full.
    with (tmp_path / "worker.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, str(launcher), str(account), "run"],
            env=env,
            stdout=log,
            stderr=log,
        )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """A process a failed assertion left running is killed, not leaked."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


async def test_worker_process_patches_its_own_pod(
    cluster: Cluster, redis_url: str, aredis: Any, tmp_path: Path
) -> None:
    """A `workflow-worker run` process with the feature on PATCHes its pod's annotation to 0 when
    idle and to its running jobs, reports the accepted value on /metrics, and drains and exits 0."""
    port = free_port()
    proc = _spawn(cluster, redis_url, tmp_path, cluster.account, port)
    try:
        await _until(lambda: cluster.api.annotation(NAMESPACE, POD) == "0", 20)
        for i in range(2):
            await aredis.lpush(
                "workflow:queue",
                json.dumps({"id": f"p{i}", "workflow": "sleep", "payload": {"seconds": 3}}),
            )
        await _until(lambda: cluster.api.annotation(NAMESPACE, POD) == "2", 10)

        async def metric_shows_two() -> bool:
            # The gauge follows the API's answer, a moment after the fake stored the annotation.
            url = f"http://127.0.0.1:{port}/metrics"
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                return "\nworkflow_pod_deletion_cost 2.0\n" in await resp.text()

        await _until_async(metric_shows_two, 2)
        proc.terminate()
        code = await asyncio.to_thread(proc.wait, 30)
    finally:
        _kill(proc)
    assert code == 0, (tmp_path / "worker.log").read_text()
    request = cluster.api.requests[-1]
    assert request.path == f"/api/v1/namespaces/{NAMESPACE}/pods/{POD}"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_worker_process_without_a_token_stops_at_start_up(
    cluster: Cluster, redis_url: str, tmp_path: Path
) -> None:
    """With the feature on and no mounted service-account token the process exits 2 with one line
    naming the setting and the chart value that mounts the token, and sends nothing."""
    empty = tmp_path / "no-account"
    empty.mkdir()
    proc = _spawn(cluster, redis_url, tmp_path, empty, free_port())
    try:
        code = await asyncio.to_thread(proc.wait, 30)
    finally:
        _kill(proc)
    assert code == 2
    lines = (tmp_path / "worker.log").read_text().strip().splitlines()
    assert len(lines) == 1, lines
    assert "WORKER_POD_DELETION_COST" in lines[0]
    assert "podDeletionCost.enabled" in lines[0]
    assert cluster.api.requests == []


async def _until_async(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


# --- start-up configuration -------------------------------------------------------------------


def test_disabled_by_default(tmp_path: Path) -> None:
    """Without WORKER_POD_DELETION_COST nothing is built and no pod identity is needed."""
    settings = Settings.from_env({})
    assert settings.pod_deletion_cost is False
    assert PodDeletionCost.from_settings(settings, lambda: 0, CollectorRegistry(), tmp_path) is None


@pytest.mark.parametrize("missing", ["POD_NAME", "KUBERNETES_SERVICE_HOST"])
def test_enabled_without_pod_identity_fails_naming_the_variable(missing: str) -> None:
    """Turning it on without the downward-API pod name or the API address fails at start-up."""
    env = {"WORKER_POD_DELETION_COST": "1", "POD_NAME": "p", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    del env[missing]
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert info.value.variable == missing


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WORKER_POD_DELETION_COST", "sometimes"),
        ("WORKER_POD_DELETION_COST_INTERVAL", "0.5"),
        ("KUBERNETES_SERVICE_PORT", "https"),
    ],
)
def test_bad_values_are_refused(variable: str, value: str) -> None:
    """With the feature on, a bad flag, an interval below one second or a non-numeric API port
    is a start-up error naming the variable."""
    env = {"WORKER_POD_DELETION_COST": "1", "POD_NAME": "p", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**env, variable: value})
    assert info.value.variable == variable


def test_kubernetes_variables_are_ignored_when_off() -> None:
    """A worker outside Kubernetes, or with the feature off, is not stopped by odd values of
    variables it does not use."""
    settings = Settings.from_env({"KUBERNETES_SERVICE_PORT": "tcp://10.0.0.1:443"})
    assert settings.pod_deletion_cost is False


def test_missing_token_or_namespace_fails_at_start_up(tmp_path: Path) -> None:
    """Without a mounted token the error says how to get one; without POD_NAMESPACE or the
    namespace file it names POD_NAMESPACE; with the file, the namespace comes from it."""
    settings = Settings.from_env(
        {"WORKER_POD_DELETION_COST": "1", "POD_NAME": "p", "KUBERNETES_SERVICE_HOST": "fd00::1"}
    )
    with pytest.raises(ConfigError, match=r"podDeletionCost\.enabled") as info:
        PodTarget.from_settings(settings, tmp_path)
    assert info.value.variable == "WORKER_POD_DELETION_COST"
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_text("c")
    with pytest.raises(ConfigError) as info:
        PodTarget.from_settings(settings, tmp_path)
    assert info.value.variable == "POD_NAMESPACE"
    (tmp_path / "namespace").write_text("team-a\n")
    target = PodTarget.from_settings(settings, tmp_path)
    assert target.namespace == "team-a"
    assert target.api_url == "https://[fd00::1]:443"
    assert target.path == "/api/v1/namespaces/team-a/pods/p"


async def test_fake_refuses_what_the_real_api_refuses(cluster: Cluster) -> None:
    """The stand-in is strict: a numeric annotation value (400), a padded cost (422) and a plain
    JSON content type (415) are refused, so the worker's accepted requests mean something."""
    url = f"https://127.0.0.1:{cluster.port}/api/v1/namespaces/{NAMESPACE}/pods/{POD}"
    context = ssl.create_default_context(cafile=str(cluster.account / "ca.crt"))
    cases = [
        ({ANNOTATION: 3}, "application/merge-patch+json", 400),
        ({ANNOTATION: "007"}, "application/merge-patch+json", 422),
        ({ANNOTATION: "7"}, "application/json", 415),
        ({ANNOTATION: "7"}, "application/strategic-merge-patch+json", 200),
    ]
    async with aiohttp.ClientSession() as session:
        for annotations, content_type, status in cases:
            body = json.dumps({"metadata": {"annotations": annotations}})
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}
            async with session.patch(url, data=body, headers=headers, ssl=context) as resp:
                assert resp.status == status, await resp.text()
                if status != 200:
                    assert (await resp.json())["kind"] == "Status"
