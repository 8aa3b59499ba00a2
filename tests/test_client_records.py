"""What the client reports about a job, against a real Redis and an in-process worker: typed
status records, `next_attempt_in` only while retrying, and `JobCancelled` for cancelled jobs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import workflow_worker
from tests.conftest import WorkerFactory, make_settings, wait_for
from workflow_worker.producer.client import Client
from workflow_worker.workflows.context import JobContext


class Flaky:
    """Fails every attempt; the second one first waits until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, payload: dict[str, Any], ctx: JobContext) -> None:
        if ctx.attempt > 1:
            await self.release.wait()
        raise ValueError(f"attempt {ctx.attempt} failed")


async def _state(client: Client, job_id: str, state: str) -> dict[str, Any] | None:
    record = await client.status(job_id)
    return record if record is not None and record["state"] == state else None


def test_public_exceptions_are_importable_from_the_package() -> None:
    """`from workflow_worker import ...` gives every exception the client raises, the same
    classes the producer modules use."""
    from workflow_worker.producer import client, requests

    assert workflow_worker.DuplicateJob is client.DuplicateJob is requests.DuplicateJob
    assert workflow_worker.JobFailed is client.JobFailed
    assert workflow_worker.PayloadTooLarge is client.PayloadTooLarge
    assert issubclass(workflow_worker.JobCancelled, workflow_worker.JobFailed)
    assert issubclass(workflow_worker.ConfigError, ValueError)
    for name in ("ConfigError", "DuplicateJob", "JobCancelled", "JobFailed", "PayloadTooLarge"):
        assert name in workflow_worker.__all__


async def test_status_values_are_numbers(start_worker: WorkerFactory, redis_url: str) -> None:
    """Counts are ints and times and durations floats, from enqueue to success."""
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("echo", {"a": 1}, delay=0.2, max_attempts=4)
        waiting = await client.status(job_id)
        assert waiting is not None
        assert (waiting["state"], waiting["attempt"], waiting["max_attempts"]) == ("delayed", 1, 4)
        assert isinstance(waiting["enqueued_at"], float)
        assert waiting["due_at"] > waiting["enqueued_at"]
        await start_worker()
        assert await client.result(job_id, timeout=10) == {"a": 1}
        done = await client.status(job_id)
    assert done is not None
    assert done["attempt"] == 1
    assert type(done["attempt"]) is int
    assert done["finished_at"] >= done["started_at"] >= done["enqueued_at"]
    assert isinstance(done["duration"], float)
    assert done["result"] == '{"a": 1}'


async def test_next_attempt_in_is_shown_only_while_retrying(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """After a failed attempt the record says when the next one comes; once the job runs again
    and when it has failed for good, that figure is gone."""
    flaky = Flaky()
    await start_worker(
        registry={"flaky": flaky}, retry_backoff_seconds=0.5, retry_backoff_max_seconds=0.5
    )
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flaky", {}, max_attempts=2)
        retrying = await wait_for(lambda: _state(client, job_id, "retrying"))
        assert 0.25 <= retrying["next_attempt_in"] <= 0.5
        running = await wait_for(lambda: _state(client, job_id, "running"))
        assert running["attempt"] == 2
        assert "next_attempt_in" not in running
        flaky.release.set()
        with pytest.raises(workflow_worker.JobFailed) as info:
            await client.result(job_id, timeout=10)
        final = await client.status(job_id)
    assert final is not None
    assert final["state"] == "failure"
    assert "next_attempt_in" not in final
    assert "next_attempt_in" not in info.value.record
    assert str(info.value) == f"job {job_id} ended as failure: ValueError: attempt 2 failed"


async def test_result_of_a_cancelled_job_says_it_was_cancelled(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A job cancelled while waiting for its retry raises JobCancelled, a JobFailed whose
    message says it was cancelled, not the earlier attempt's error."""
    flaky = Flaky()
    await start_worker(
        registry={"flaky": flaky}, retry_backoff_seconds=5, retry_backoff_max_seconds=5
    )
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flaky", {}, max_attempts=3)
        await wait_for(lambda: _state(client, job_id, "retrying"))
        assert await client.cancel(job_id) == "cancelled"
        with pytest.raises(workflow_worker.JobCancelled) as info:
            await client.result(job_id, timeout=10)
    assert isinstance(info.value, workflow_worker.JobFailed)
    assert str(info.value) == f"job {job_id} was cancelled"
    assert info.value.record["state"] == "cancelled"
    assert info.value.record["error"] == "ValueError: attempt 1 failed"
    assert "next_attempt_in" not in info.value.record
