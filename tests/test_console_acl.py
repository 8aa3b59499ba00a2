"""The job console under the least-privilege Redis user: the worker's documented ACL line plus
the three read commands docs/console.md names are all it needs for every page and action."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import ROOT, make_settings, wait_for
from tests.console_helpers import BEARER, basic, running_console
from tests.servers import RedisServer
from tests.test_security import acl, documented_acl_rules, server_with_acl_user, user_url
from workflow_worker.app import Worker
from workflow_worker.producer.client import Client
from workflow_worker.workflows.context import JobContext


def console_extra_rules() -> list[str]:
    """The commands docs/console.md says the console needs beyond the worker's line."""
    text = (ROOT / "docs" / "console.md").read_text()
    match = re.search(r"three read commands more:\s*`([^`]+)`", text)
    assert match, "docs/console.md must name the console's extra ACL commands"
    return match.group(1).split()


@pytest.fixture
def console_acl_server(tmp_path: Path) -> Iterator[tuple[RedisServer, redis.Redis]]:
    """A private server whose user has the worker's documented rules plus the console's."""
    rules = [*documented_acl_rules(), *console_extra_rules()]
    with server_with_acl_user(tmp_path, rules) as started:
        yield started


async def hold(payload: dict[str, Any], ctx: JobContext) -> None:
    await asyncio.sleep(60)


async def boom(payload: dict[str, Any], ctx: JobContext) -> None:
    raise ValueError("boom")


async def test_every_page_and_action_runs_under_the_documented_acl(
    console_acl_server: tuple[RedisServer, redis.Redis],
) -> None:
    """Pages for waiting, delayed, running and failed jobs, the dead letters, and cancel, retry,
    requeue and purge all work for the ACL user, and Redis refuses none of their commands."""
    server, admin = console_acl_server
    url = user_url(server)
    settings = make_settings(url)
    worker = Worker(settings, registry={"hold": hold, "boom": boom})
    task = asyncio.create_task(worker.run())
    try:
        async with Client(settings) as client:
            running = await client.enqueue("hold", {})
            failed = [await client.enqueue("boom", {}, max_attempts=1) for _ in range(2)]
            await wait_for(lambda: _states(client, [running, *failed]), timeout=20)
            worker.request_stop()
            worker.request_stop()
            await asyncio.wait_for(task, 60)
            delayed = await client.enqueue("hold", {}, delay=600)
            waiting = await client.enqueue("hold", {})
            async with running_console(url) as console:
                for path in ("/", "/jobs", "/dead", "/jobs?state=failure"):
                    assert (await console.get(path, headers=basic())).status == 200, path
                for job_id in (running, delayed, waiting, failed[0]):
                    page = await console.get(f"/api/jobs/{job_id}", headers=BEARER)
                    assert page.status == 200
                    assert (await page.json())["message"] is not None, job_id
                actions: list[tuple[str, dict[str, str]]] = [
                    ("cancel", {"id": delayed}),
                    ("retry", {"id": failed[0]}),
                    ("purge", {}),
                ]
                for name, body in actions:
                    done = await console.post(f"/api/actions/{name}", json=body, headers=BEARER)
                    assert done.status == 200, (name, await done.text())
    finally:
        if not task.done():
            worker.request_stop()
            worker.request_stop()
            await asyncio.wait_for(task, 60)
    log = acl(admin, "LOG")
    assert isinstance(log, list)
    denied = [entry for entry in log if b"config|get" not in entry.get(b"object", b"")]
    assert denied == [], f"Redis refused commands of the console: {denied}"


async def _states(client: Client, ids: list[str]) -> bool:
    """The first job runs and the others failed for good."""
    records = [await client.status(job_id) for job_id in ids]
    wanted = ["running"] + ["failure"] * (len(ids) - 1)
    return [r["state"] if r else None for r in records] == wanted
