"""Plain `def` workflows: they run in the worker's bounded thread pool, never on the event loop;
timeouts and cancels end the attempt at once while the thread runs on; the start-up check tells
async from sync and refuses anything else by name."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tests.conftest import WorkerFactory, WorkerProcess, make_settings, wait_for
from workflow_worker.app import Worker
from workflow_worker.engine import threads
from workflow_worker.engine.runnables import runnables
from workflow_worker.engine.threads import Threads
from workflow_worker.errors import ConfigError
from workflow_worker.producer.client import Client, JobFailed, SyncClient
from workflow_worker.workflows.context import JobContext
from workflow_worker.workflows.registry import check_registry


def _sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("workflow-sync-")]


class Overlap:
    """A sync workflow that sleeps and records how many of its calls overlap, and where."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.threads: set[str] = set()
        self.finished: list[str] = []

    def __call__(self, payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.threads.add(threading.current_thread().name)
        time.sleep(float(payload.get("seconds", 0.2)))
        with self.lock:
            self.running -= 1
            self.finished.append(ctx.job_id)
        return {"thread": threading.current_thread().name, "job": ctx.job_id}


async def test_sync_workflow_runs_in_a_thread_and_the_loop_stays_free(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A `def` workflow that sleeps 0.8 s runs in a worker thread while an async job on the same
    worker finishes in a fraction of that time, and its result comes back."""
    slow = Overlap()

    async def quick(payload: dict[str, Any], ctx: JobContext) -> str:
        return threading.current_thread().name

    await start_worker(registry={"slow": slow, "quick": quick})
    async with Client(make_settings(redis_url)) as client:
        slow_id = await client.enqueue("slow", {"seconds": 0.8})
        await wait_for(lambda: slow.running == 1)
        started = time.monotonic()
        quick_id = await client.enqueue("quick", {})
        assert await client.result(quick_id, timeout=10) == "MainThread"
        assert time.monotonic() - started < 0.5
        result = await client.result(slow_id, timeout=10)
    assert result["thread"].startswith("workflow-sync-")
    assert result["job"] == slow_id


async def test_the_pool_is_bounded_by_worker_sync_threads(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """With WORKER_SYNC_THREADS=2, six sync jobs on a 10-slot worker never run more than two
    at a time, all on the same two threads, and all finish."""
    work = Overlap()
    await start_worker(registry={"work": work}, sync_threads=2, concurrency=10)
    async with Client(make_settings(redis_url)) as client:
        ids = [await client.enqueue("work", {"seconds": 0.15}) for _ in range(6)]
        for job_id in ids:
            await client.result(job_id, timeout=15)
    assert work.peak == 2
    assert len(work.threads) == 2


async def test_an_all_async_worker_starts_no_thread(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A worker whose jobs are all async runs them without starting a single pool thread."""

    async def echo(payload: dict[str, Any], ctx: JobContext) -> Any:
        return payload

    before = len(_sync_threads())
    await start_worker(registry={"echo": echo})
    async with Client(make_settings(redis_url)) as client:
        for n in range(5):
            assert await client.result(await client.enqueue("echo", {"n": n}), timeout=10) == {
                "n": n
            }
    assert len(_sync_threads()) == before


async def test_timed_out_sync_attempt_ends_at_once_and_the_thread_runs_on(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A sync job past its 0.2 s timeout is recorded as failed by timeout long before its
    1.5 s sleep ends; the thread still finishes its call, and that late result is discarded."""
    slow = Overlap()
    await start_worker(registry={"slow": slow})
    async with Client(make_settings(redis_url)) as client:
        started = time.monotonic()
        job_id = await client.enqueue("slow", {"seconds": 1.5}, timeout=0.2, max_attempts=1)
        with pytest.raises(JobFailed) as info:
            await client.result(job_id, timeout=10)
        ended = time.monotonic() - started
        assert ended < 1.2
        assert "timed out after 0.2s" in str(info.value)
        assert slow.finished == []  # the thread is still in its sleep
        await wait_for(lambda: slow.finished == [job_id], timeout=5)
        record = await client.status(job_id)
    assert record is not None
    assert record["state"] == "failure"
    assert "result" not in record or not record["result"]


async def test_cancelled_sync_job_ends_at_once(start_worker: WorkerFactory, redis_url: str) -> None:
    """Cancelling a running sync job ends it as cancelled at once, not when its thread ends."""
    slow = Overlap()
    await start_worker(registry={"slow": slow})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("slow", {"seconds": 1.5})
        await wait_for(lambda: slow.running == 1)
        started = time.monotonic()
        assert await client.cancel(job_id) == "cancelling"
        record = await wait_for(lambda: _final(client, job_id))
        assert time.monotonic() - started < 1.0
    assert record["state"] == "cancelled"


async def _final(client: Client, job_id: str) -> dict[str, Any] | None:
    record = await client.status(job_id)
    if record and record["state"] in ("cancelled", "success", "failure"):
        return record
    return None


@pytest.fixture
async def pool() -> AsyncIterator[Threads]:
    threads_ = Threads(1, name="workflow-sync-test")
    yield threads_
    await threads_.close(1.0)


async def test_call_waiting_for_a_thread_never_starts_once_cancelled(pool: Threads) -> None:
    """With one thread busy, a second call cancelled while it waits for that thread is never
    run at all."""
    release = threading.Event()
    ran: list[str] = []
    first = asyncio.ensure_future(pool.call(release.wait, 5))
    second = asyncio.ensure_future(pool.call(ran.append, "second"))
    await asyncio.sleep(0.05)
    second.cancel()
    release.set()
    assert await first is True
    with pytest.raises(asyncio.CancelledError):
        await second
    await pool.call(ran.append, "third")
    assert ran == ["third"]


async def test_call_carries_context_and_exceptions(pool: Threads) -> None:
    """`threads.call` hands the caller's context variables to the thread and raises the
    function's exception in the caller."""
    threads.current.set(pool)

    def boom() -> None:
        assert threads.current.get() is pool
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        await threads.call(boom)
    assert pool.started == 1


async def gen_flow(payload: dict[str, Any], ctx: JobContext) -> Any:
    yield 1


def sync_gen(payload: dict[str, Any], ctx: JobContext) -> Iterator[int]:
    yield 1


class NotAFunction:
    def __init__(self, payload: dict[str, Any], ctx: JobContext) -> None:
        pass


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (gen_flow, "async generator"),
        (sync_gen, "generator function"),
        (NotAFunction, "a class (NotAFunction)"),
        ("text", "a str, not a function"),
    ],
)
def test_start_up_check_refuses_what_is_not_a_workflow_by_name(bad: Any, words: str) -> None:
    """The registry check names the workflow and what it is when it is neither async nor
    sync function-like, before any job runs."""
    with pytest.raises(ConfigError) as info:
        check_registry({"ok": Overlap(), "bad_one": bad}, "app.flows:WORKFLOWS")
    assert "workflow 'bad_one' is " in str(info.value)
    assert words in str(info.value)
    assert "WORKER_WORKFLOWS" in str(info.value)


def test_worker_refuses_a_bad_registry_given_in_code(redis_url: str) -> None:
    """A registry handed to `Worker` directly gets the same start-up check."""
    with pytest.raises(ConfigError, match="workflow 'g' is an async generator"):
        Worker(make_settings(redis_url), registry={"g": gen_flow})


def test_sync_threads_setting_is_validated() -> None:
    """WORKER_SYNC_THREADS must be a positive integer; 0 is refused naming the variable."""
    from workflow_worker.settings import Settings

    assert Settings.from_env({"WORKER_SYNC_THREADS": "3"}).sync_threads == 3
    with pytest.raises(ConfigError, match="WORKER_SYNC_THREADS"):
        Settings.from_env({"WORKER_SYNC_THREADS": "0"})


def test_a_stuck_sync_call_cannot_hold_the_worker_process_at_exit(
    spawn_worker: Callable[..., WorkerProcess], redis_url: str
) -> None:
    """A worker process whose sync job timed out while its thread sleeps on for a minute still
    exits on SIGTERM within seconds, with code 0, logging that a sync call was left running."""
    worker = spawn_worker(WORKER_WORKFLOWS="tests.sync_flows:WORKFLOWS")
    with SyncClient(make_settings(redis_url)) as client:
        job_id = client.enqueue("stuck", {"seconds": 60}, timeout=0.3, max_attempts=1)
        with pytest.raises(JobFailed, match="timed out"):
            client.result(job_id, timeout=10)
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert time.monotonic() - started < 15
    assert "still running at exit" in worker.log()


def test_async_workflows_are_called_as_they_are() -> None:
    """The executor calls an `async def` workflow itself, with no wrapper around it (the
    async hot path is unchanged); only a `def` workflow is wrapped for the thread pool."""

    async def fast(payload: dict[str, Any], ctx: JobContext) -> None:
        return None

    def slow(payload: dict[str, Any], ctx: JobContext) -> None:
        return None

    pool = Threads(1)
    funcs: dict[str, Any] = runnables({"fast": fast, "slow": slow}, pool)
    assert funcs["fast"] is fast
    assert funcs["slow"] is not slow
    assert funcs["slow"].__wrapped__ is slow
    assert pool.started == 0
