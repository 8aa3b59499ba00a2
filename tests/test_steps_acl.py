"""Durable steps under the least-privilege Redis user documented in docs/guarantees.md."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from tests.conftest import WorkerProcess, wait_until, worker_env
from tests.servers import RedisServer
from tests.step_flows import runs_key
from tests.test_security import USER, _entries, _fields, acl, acl_server, user_url
from workflow_worker.engine.keys import QueueKeys

__all__ = ["acl_server"]  # the fixture, imported to be used here

Q = "workflow:queue"
KEYS = QueueKeys.for_queue(Q)


def test_steps_and_a_checkpoint_drain_need_no_command_beyond_the_documented_acl(
    acl_server: tuple[RedisServer, redis.Redis], tmp_path: Path
) -> None:
    """A five-step workflow recorded, checkpointed by a drain and finished by another worker,
    all as the documented ACL user: each step ran once, and the server's ACL log holds nothing
    but the CONFIG GET attempts."""
    server, admin = acl_server
    # The workflow's own counters (docs/guarantees.md: workflows' keys need their own grant).
    acl(admin, "SETUSER", USER, "~runs:*", "+incrby")
    env = worker_env(user_url(server), WORKER_WORKFLOWS="tests.step_flows:WORKFLOWS")
    procs = [WorkerProcess(env, tmp_path / "first.log")]
    try:
        procs[0].wait_ready()
        job = {"workflow": "five_steps", "id": "acl", "payload": {"tag": "acl", "seconds": 0.4}}
        admin.lpush(Q, json.dumps(job))
        wait_until(lambda: int(admin.get(runs_key("acl", 2)) or 0) == 1, timeout=30)
        procs[0].proc.terminate()
        assert procs[0].proc.wait(30) == 0
        assert admin.hget(KEYS.job("acl"), "state") == b"queued"
        procs.append(WorkerProcess(env, tmp_path / "second.log"))
        procs[1].wait_ready()
        wait_until(lambda: admin.hget(KEYS.job("acl"), "state") == b"success", timeout=30)
    finally:
        for handle in procs:
            if handle.proc.poll() is None:
                handle.proc.kill()
                handle.proc.wait()
    assert [int(admin.get(runs_key("acl", s)) or 0) for s in range(1, 6)] == [1] * 5
    log = [_fields(entry) for entry in _entries(acl(admin, "LOG"))]
    denied = [entry for entry in log if entry.get("object") != "config|get"]
    assert denied == [], f"Redis refused commands of the documented ACL user: {denied}"
