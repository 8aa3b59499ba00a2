"""Composition with only the documented least-privilege ACL: every script it runs (group
creation, the group end inside the apply script, the child list) stays within the ACL."""

from __future__ import annotations

import redis

from tests.conftest import worker_env
from tests.servers import RedisServer
from tests.test_security import (  # noqa: F401 - fixtures, used by name
    Workers,
    _entries,
    _fields,
    acl,
    acl_server,
    user_url,
    workers,
)
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings


def test_composition_runs_with_the_documented_acl(
    acl_server: tuple[RedisServer, redis.Redis],  # noqa: F811
    workers: Workers,  # noqa: F811
) -> None:
    """A group with a callback, a chain and a workflow's children, groups and chains all run
    under the documented ACL user, and Redis refuses none of their commands."""
    server, admin = acl_server
    url = user_url(server)
    env = worker_env(url, WORKER_WORKFLOWS="tests.compose_flows:WORKFLOWS")
    workers.spawn(url, env=env)
    with SyncClient(Settings.from_env({"REDIS_URL": url})) as client:
        gid = client.group([JobSpec("echo", {"n": n}) for n in range(3)], then=JobSpec("echo"))
        ids = client.chain(JobSpec("echo", {"a": 1}) | JobSpec("echo"))
        fanned = client.result(client.enqueue("fan", {}, id="F"), timeout=30)
        answer = client.result(gid, timeout=30)
        assert [r["result"] for r in answer["results"]] == [{"n": n} for n in range(3)]
        assert client.result(ids[-1], timeout=30)["previous"]["result"] == {"a": 1}
        assert client.result(fanned["group"], timeout=30)["results"][2]["state"] == "success"
        assert client.result(fanned["chain"][-1], timeout=30)["previous"]["state"] == "success"
        record = client.status("F")
        assert record is not None
        assert record["children"] == [fanned["child"], fanned["group"], *fanned["chain"]]
    log = [_fields(entry) for entry in _entries(acl(admin, "LOG"))]
    denied = [entry for entry in log if entry.get("object") != "config|get"]
    assert denied == [], f"Redis refused commands of the documented ACL user: {denied}"
