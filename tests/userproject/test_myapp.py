from __future__ import annotations

import asyncio

import myapp_flows
import pytest

from workflow_worker import JobFailed, Permanent
from workflow_worker.testing import run_workflow, run_workflow_sync
from workflow_worker.testing.pytest_plugin import RunningStack


def test_eager_async_with_lifespan_and_progress() -> None:
    run = run_workflow_sync(myapp_flows.greet, {"name": "ada"}, lifespan=myapp_flows.lifespan)
    assert run.result == "hello ada"
    assert run.progress == [(0.5, "greeting")]


def test_eager_sync_workflow_runs_in_a_thread() -> None:
    run = asyncio.run(run_workflow(myapp_flows.add, {"a": 2, "b": 3}))
    assert run.result == 5
    assert run.progress == [(1.0, "added")]


def test_eager_raises_the_workflows_exception() -> None:
    with pytest.raises(Permanent, match="no name"):
        run_workflow_sync(myapp_flows.greet, {}, state={"greeting": "hi"})


def test_worker_and_client_on_an_embedded_server(workflow_stack: RunningStack) -> None:
    assert workflow_stack.run("greet", {"name": "bob"}) == "hello bob"
    assert workflow_stack.run("add", {"a": 1, "b": 1}) == 2
    job_id = workflow_stack.client.enqueue("greet", {})
    with pytest.raises(JobFailed, match="no name"):
        workflow_stack.client.result(job_id, timeout=10)
    record = workflow_stack.client.status(job_id)
    assert record is not None
    assert record["attempt"] == 1
    assert record["progress"] == 0.5


async def test_async_client_in_an_async_test(workflow_stack: RunningStack) -> None:
    async with workflow_stack.async_client() as client:
        job_id = await client.enqueue("greet", {"name": "cy"})
        assert await client.result(job_id, timeout=10) == "hello cy"
