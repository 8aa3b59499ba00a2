"""The command line against a real server: enqueue, status, job, cancel and dead-letter tools."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import redis

import workflow_worker
from tests.conftest import ROOT, WorkerProcess, run_cli, wait_until, worker_env
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.client import SyncClient
from workflow_worker.settings import Settings

KEYS = QueueKeys.for_queue("workflow:queue")


def cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(redis_url, *args)


def test_enqueue_status_and_job(redis_url: str) -> None:
    """`enqueue` prints ids, `status --json` counts them, `job` prints a record."""
    out = cli(redis_url, "enqueue", "echo", "--payload", '{"a": 1}', "--count", "3")
    assert out.returncode == 0, out.stderr
    ids = out.stdout.split()
    assert len(ids) == 3
    status = json.loads(cli(redis_url, "status", "--json").stdout)
    assert (status["queued"], status["inflight"], status["dead"]) == (3, 0, 0)
    record = json.loads(cli(redis_url, "job", ids[0], "--json").stdout)
    assert record["state"] == "queued"
    assert record["workflow"] == "echo"
    assert (record["attempt"], record["max_attempts"]) == (1, 3)
    assert isinstance(record["enqueued_at"], float)
    assert cli(redis_url, "job", "missing").returncode == 1


def test_enqueue_unique_and_bad_payload(redis_url: str) -> None:
    """A duplicate id is reported with exit code 3; a non-object payload is refused."""
    assert cli(redis_url, "enqueue", "echo", "--id", "j1").returncode == 0
    dup = cli(redis_url, "enqueue", "echo", "--id", "j1")
    assert dup.returncode == 3
    assert "duplicate of j1" in dup.stdout
    bad = cli(redis_url, "enqueue", "echo", "--payload", "[1]")
    assert bad.returncode == 2
    assert bad.stderr == "workflow-worker: --payload [1] is not valid: expected a JSON object\n"


def test_cancel_and_dead_letter_commands(
    redis_url: str, sync_redis: redis.Redis, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    """`cancel`, and `dead list/show/requeue/purge` work on real entries."""
    assert cli(redis_url, "enqueue", "echo", "--id", "c1", "--delay", "60").returncode == 0
    out = cli(redis_url, "cancel", "c1")
    assert out.returncode == 0
    assert "c1: cancelled" in out.stdout
    sync_redis.lpush("workflow:queue", b"not json", b'{"workflow": "nope"}')
    worker = spawn_worker()
    wait_until(lambda: sync_redis.llen(KEYS.dead) == 2)
    listing = cli(redis_url, "dead", "list")
    assert "unknown workflow 'nope'" in listing.stdout
    assert "not valid JSON" in listing.stdout
    # Both were claimed together and handled concurrently: their order in the list varies.
    shown = [json.loads(cli(redis_url, "dead", "show", str(i)).stdout) for i in (0, 1)]
    assert {entry["job"] for entry in shown} == {"not json", '{"workflow": "nope"}'}
    assert cli(redis_url, "dead", "requeue", "0").stdout.strip() == "requeued 1"
    wait_until(lambda: sync_redis.llen(KEYS.dead) == 2)
    assert cli(redis_url, "dead", "purge").returncode == 1
    assert cli(redis_url, "dead", "purge", "--yes").stdout.strip() == "purged 2"
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def _died_or_buried(worker: WorkerProcess, client: redis.Redis) -> bool:
    return worker.proc.poll() is not None or bool(client.llen(KEYS.dead))


def test_crash_budget_dead_letters_a_job_that_keeps_killing_workers(
    redis_url: str, sync_redis: redis.Redis, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    """A job that SIGKILLs every worker running it is dead-lettered after K re-deliveries."""
    env = {
        "WORKER_WORKFLOWS": "tests.flows:WORKFLOWS",
        "WORKER_LEASE_SECONDS": "1",
        "WORKER_CRASH_REDELIVERY_LIMIT": "2",
    }
    assert cli(redis_url, "enqueue", "crash", "--id", "oom").returncode == 0
    crashes = 0
    while not sync_redis.llen(KEYS.dead):
        worker = spawn_worker(wait_ready=False, **env)
        wait_until(partial(_died_or_buried, worker, sync_redis), 30)
        if worker.proc.poll() is not None:
            assert worker.proc.returncode == -signal.SIGKILL
            crashes += 1
        assert crashes <= 3, "the budget must stop the crash loop"
    assert crashes == 3, "first delivery plus two re-deliveries, then the dead-letter list"
    survivor = worker
    entry = json.loads(sync_redis.lindex(KEYS.dead, 0) or b"{}")
    assert entry["kind"] == "crash_budget"
    assert json.loads(entry["job"])["id"] == "oom"
    assert sync_redis.llen("workflow:queue") == 0
    assert sync_redis.hlen(KEYS.processing) == 0
    survivor.signal(signal.SIGTERM)
    assert survivor.wait() == 0


def test_version() -> None:
    """`--version` prints the installed version and exits 0, without Redis."""
    out = run_cli("redis://127.0.0.1:1/0", "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"workflow-worker {workflow_worker.__version__}\n"


def test_flags_are_checked_like_their_variables(redis_url: str) -> None:
    """`run --concurrency 0` and `--http-port 99999` are refused at once (exit 2, naming the
    flag) instead of starting a worker that takes no job or binds a random port; a valid
    `--queue` still applies."""
    for flag, value, allowed in (
        ("--concurrency", "0", "an integer from 1 to 10000"),
        ("--http-port", "99999", "an integer from 0 to 65535"),
        ("--concurrency", "many", "an integer from 1 to 10000"),
    ):
        out = run_cli(redis_url, "run", flag, value, timeout=30)
        assert out.returncode == 2
        assert out.stderr == f"workflow-worker: {flag} {value} is not valid: expected {allowed}\n"
    assert cli(redis_url, "--queue", "other", "enqueue", "echo").returncode == 0
    assert json.loads(cli(redis_url, "--queue", "other", "status", "--json").stdout)["queued"] == 1


def test_run_imports_the_application_from_the_working_directory(
    redis_url: str, tmp_path: Path
) -> None:
    """The installed script, started in the application's directory, finds
    `WORKER_WORKFLOWS=myapp.flows:WORKFLOWS` there (as Celery, uvicorn and arq do) and runs it."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "flows.py").write_text(
        "async def greet(payload, ctx):\n    return 'hello ' + payload['name']\n\n"
        "WORKFLOWS = {'greet': greet}\n"
    )
    env = worker_env(redis_url, WORKER_WORKFLOWS="myapp.flows:WORKFLOWS", WORKER_HTTP_PORT="0")
    assert str(tmp_path) not in env["PYTHONPATH"]
    script = Path(sys.executable).with_name("workflow-worker")
    proc = subprocess.Popen(
        [str(script), "run"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with SyncClient(Settings(redis_url=redis_url)) as client:
            job_id = client.enqueue("greet", {"name": "newcomer"})
            assert client.result(job_id, timeout=30) == "hello newcomer"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_a_closed_pipe_ends_quietly(redis_url: str, sync_redis: redis.Redis) -> None:
    """`dead list | head -1`: when the reader goes away the command exits 141, as a process
    killed by SIGPIPE would, and prints no BrokenPipeError traceback."""
    sync_redis.lpush(KEYS.dead, *[json.dumps({"reason": f"r{i}", "job": "{}"}) for i in range(50)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflow_worker", "dead", "list", "--count", "50"],
        env=worker_env(redis_url),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the command writes anything
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 141, err
    assert err == ""
