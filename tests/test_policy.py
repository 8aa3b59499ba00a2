"""Per-workflow policy with the `Workflows` registry, `Retry` and `Permanent`, per-job hooks,
and final failures logged at ERROR, against a real server."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

from tests.conftest import WorkerFactory, make_settings, wait_for
from workflow_worker import Permanent, Retry, Workflows
from workflow_worker.producer.client import Client, JobFailed
from workflow_worker.workflows.context import JobContext

Q = "workflow:queue"


class Calls:
    def __init__(self) -> None:
        self.attempts: list[tuple[int, float]] = []


async def test_workflows_registry_is_a_mapping_with_policies() -> None:
    """`@workflows.workflow(...)` registers under the function's name, the registry reads as a
    mapping, and a second registration of one name is refused."""
    workflows = Workflows()

    @workflows.workflow(timeout=5, max_attempts=2)
    async def first(payload: dict[str, Any], ctx: JobContext) -> None:
        return None

    @workflows.workflow("other")
    def second(payload: dict[str, Any], ctx: JobContext) -> None:
        return None

    @workflows.workflow
    async def bare(payload: dict[str, Any], ctx: JobContext) -> None:
        return None

    assert dict(workflows) == {"first": first, "other": second, "bare": bare}
    assert workflows.policies["first"].timeout == 5.0
    assert "other" not in workflows.policies
    with pytest.raises(ValueError, match="registered twice"):
        workflows.workflow("first")(second)
    with pytest.raises(TypeError, match="retry_on must be a tuple"):
        workflows.workflow(retry_on=ValueError)  # type: ignore[call-overload]


async def test_retry_with_delay_waits_that_long_and_counts_an_attempt(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """`raise Retry(delay=0.6)` brings the job back about 0.6 s later as attempt 2, although the
    usual backoff here is 50 ms."""
    workflows = Workflows()
    calls = Calls()

    @workflows.workflow(max_attempts=3)
    async def later(payload: dict[str, Any], ctx: JobContext) -> int:
        calls.attempts.append((ctx.attempt, time.monotonic()))
        if ctx.attempt == 1:
            raise Retry(delay=0.6)
        return ctx.attempt

    await start_worker(registry=workflows)
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("later", {})
        assert await client.result(job_id, timeout=10) == 2
    (first, t1), (second, t2) = calls.attempts
    assert (first, second) == (1, 2)
    assert 0.55 <= t2 - t1 < 2.0


async def test_retry_respects_max_attempts(start_worker: WorkerFactory, redis_url: str) -> None:
    """A workflow that always raises Retry fails for good after its policy's max_attempts."""
    workflows = Workflows()
    calls = Calls()

    @workflows.workflow(max_attempts=2)
    async def again(payload: dict[str, Any], ctx: JobContext) -> None:
        calls.attempts.append((ctx.attempt, 0.0))
        raise Retry(delay=0)

    await start_worker(registry=workflows)
    async with Client(make_settings(redis_url)) as client:
        # The message carries no max_attempts of its own: the policy's applies.
        job_id = await client.enqueue("again", {})
        with pytest.raises(JobFailed, match="Retry"):
            await client.result(job_id, timeout=10)
    assert [a for a, _ in calls.attempts] == [1, 2]


async def test_permanent_fails_at_once(start_worker: WorkerFactory, redis_url: str) -> None:
    """`raise Permanent(...)` ends the job as a failure on its first attempt, with 5 allowed,
    and the dead-letter entry says it was not retried."""
    calls = Calls()

    async def bad_input(payload: dict[str, Any], ctx: JobContext) -> None:
        calls.attempts.append((ctx.attempt, 0.0))
        raise Permanent("no such customer")

    await start_worker(registry={"bad_input": bad_input})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("bad_input", {}, max_attempts=5)
        with pytest.raises(JobFailed, match="Permanent: no such customer"):
            await client.result(job_id, timeout=10)
        dead = await client.dead_letters()
    assert len(calls.attempts) == 1
    assert "not retried" in dead[0].reason


async def test_retry_on_and_no_retry_on_select_what_retries(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """With retry_on=(ConnectionError,), a KeyError fails at once while a ConnectionError is
    retried; with no_retry_on=(ValueError,), a ValueError fails at once."""
    workflows = Workflows()
    seen: dict[str, list[int]] = {"picky": [], "strict": []}

    @workflows.workflow(retry_on=(ConnectionError,), max_attempts=3)
    async def picky(payload: dict[str, Any], ctx: JobContext) -> str:
        seen["picky"].append(ctx.attempt)
        if payload["error"] == "key":
            raise KeyError("missing")
        if ctx.attempt == 1:
            raise ConnectionError("reset")
        return "ok"

    @workflows.workflow(no_retry_on=(ValueError,), max_attempts=3)
    async def strict(payload: dict[str, Any], ctx: JobContext) -> str:
        seen["strict"].append(ctx.attempt)
        raise ValueError("bad")

    await start_worker(registry=workflows)
    async with Client(make_settings(redis_url)) as client:
        key_id = await client.enqueue("picky", {"error": "key"})
        with pytest.raises(JobFailed, match="KeyError"):
            await client.result(key_id, timeout=10)
        assert seen["picky"] == [1]
        conn_id = await client.enqueue("picky", {"error": "conn"})
        assert await client.result(conn_id, timeout=10) == "ok"
        assert seen["picky"] == [1, 1, 2]
        strict_id = await client.enqueue("strict", {})
        with pytest.raises(JobFailed, match="ValueError"):
            await client.result(strict_id, timeout=10)
    assert seen["strict"] == [1]


async def test_policy_timeout_applies_when_the_job_sets_none(
    start_worker: WorkerFactory, redis_url: str, aredis: Any
) -> None:
    """A raw message without a timeout gets its workflow's policy timeout (0.2 s), not the
    worker's default (600 s)."""
    workflows = Workflows()

    @workflows.workflow(timeout=0.2, max_attempts=1)
    async def sleepy(payload: dict[str, Any], ctx: JobContext) -> None:
        await asyncio.sleep(5)

    await start_worker(registry=workflows)
    await aredis.lpush(Q, json.dumps({"workflow": "sleepy", "id": "s1"}))
    async with Client(make_settings(redis_url)) as client:
        with pytest.raises(JobFailed, match=r"timed out after 0\.2s"):
            await client.result("s1", timeout=10)


async def test_job_hooks_run_around_each_attempt_and_never_change_the_outcome(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """before_job, after_job and on_failure hooks see each attempt; a hook that raises is
    logged and the job still succeeds."""
    workflows = Workflows()
    events: list[tuple[str, str, int]] = []

    @workflows.before_job
    async def before(ctx: JobContext) -> None:
        events.append(("before", ctx.workflow, ctx.attempt))
        raise RuntimeError("a broken tracer")

    @workflows.after_job
    async def after(ctx: JobContext, result: Any) -> None:
        events.append(("after", str(result), ctx.attempt))

    @workflows.on_failure
    async def failure(ctx: JobContext, exc: BaseException) -> None:
        events.append(("failure", type(exc).__name__, ctx.attempt))

    @workflows.workflow(max_attempts=2)
    async def flaky(payload: dict[str, Any], ctx: JobContext) -> str:
        if ctx.attempt == 1:
            raise OSError("first")
        return "fine"

    await start_worker(registry=workflows)
    async with Client(make_settings(redis_url)) as client:
        assert await client.result(await client.enqueue("flaky", {}), timeout=10) == "fine"
    assert events == [
        ("before", "flaky", 1),
        ("failure", "OSError", 1),
        ("before", "flaky", 2),
        ("after", "fine", 2),
    ]
    with pytest.raises(TypeError, match="async def"):
        workflows.before_job(lambda ctx: None)  # type: ignore[arg-type,return-value]


async def test_final_failure_is_logged_at_error_with_its_traceback(
    start_worker: WorkerFactory, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A job that fails for good is logged at ERROR with the traceback of its last error,
    while the worker's level is WARNING."""

    async def broken(payload: dict[str, Any], ctx: JobContext) -> None:
        raise ZeroDivisionError("the bug")

    await start_worker(registry={"broken": broken})
    caplog.set_level(logging.ERROR, logger="workflow_worker.jobs")
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("broken", {}, max_attempts=1)
        with pytest.raises(JobFailed):
            await client.result(job_id, timeout=10)
    records = await wait_for(
        lambda: [r for r in caplog.records if getattr(r, "job_id", None) == job_id]
    )
    (record,) = records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "job finished"
    assert record.error == "ZeroDivisionError: the bug"
    assert "raise ZeroDivisionError" in record.traceback


async def test_on_failure_hook_sees_a_timeout(start_worker: WorkerFactory, redis_url: str) -> None:
    """An attempt cancelled by its timeout reaches the on_failure hooks as a TimeoutError."""
    workflows = Workflows()
    seen: list[str] = []

    @workflows.on_failure
    async def report(ctx: JobContext, exc: BaseException) -> None:
        seen.append(f"{type(exc).__name__}: {exc}")

    @workflows.workflow(timeout=0.2, max_attempts=1)
    async def slow(payload: dict[str, Any], ctx: JobContext) -> None:
        await asyncio.sleep(5)

    await start_worker(registry=workflows)
    async with Client(make_settings(redis_url)) as client:
        with pytest.raises(JobFailed, match="timed out"):
            await client.result(await client.enqueue("slow", {}), timeout=10)
    assert seen == ["JobTimeout: timed out after 0.2s"]
