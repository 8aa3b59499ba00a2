"""Durable steps in-process against a real Redis: replay, naming, results, sleep, drains."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from prometheus_client import generate_latest

from tests.conftest import WorkerFactory, make_settings, wait_for
from tests.servers import RedisServer
from workflow_worker.app import Worker
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.scripts import lua_source
from workflow_worker.producer.client import Client
from workflow_worker.testing import run_workflow
from workflow_worker.workflows import steps as steps_module
from workflow_worker.workflows.context import JobContext
from workflow_worker.workflows.steps import StepLimitError

Q = "workflow:queue"
KEYS = QueueKeys.for_queue(Q)


class Counted:
    """Step functions that count their runs per name."""

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}

    def fn(self, name: str) -> Any:
        async def step(value: int) -> int:
            self.runs[name] = self.runs.get(name, 0) + 1
            return value + 1

        return step


async def _status(aredis: aioredis.Redis, job_id: str) -> dict[str, str]:
    raw: dict[bytes, bytes] = await aredis.hgetall(KEYS.job(job_id))  # type: ignore[assignment]
    return {k.decode(): v.decode() for k, v in raw.items()}


async def _steps(aredis: aioredis.Redis, job_id: str) -> dict[str, Any]:
    raw: dict[bytes, bytes] = await aredis.hgetall(KEYS.steps(job_id))  # type: ignore[assignment]
    return {k.decode(): json.loads(v) for k, v in raw.items() if k != b"_run"}


async def test_a_retried_attempt_replays_recorded_steps(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str
) -> None:
    """A job that fails after two steps resumes on retry: recorded steps return their results
    without running, the rest run once, and the status shows the steps done."""
    counted = Counted()

    async def flow(payload: dict[str, Any], ctx: JobContext) -> int:
        a = await ctx.step("a", counted.fn("a"), 1)
        b = await ctx.step("b", counted.fn("b"), a)
        if ctx.attempt == 1:
            raise RuntimeError("fails after two steps")
        result: int = await ctx.step("c", counted.fn("c"), b)
        return result

    worker = await start_worker(registry={"flow": flow})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flow", {}, max_attempts=3)
        assert await client.result(job_id, timeout=10) == 4
    assert counted.runs == {"a": 1, "b": 1, "c": 1}
    assert await _steps(aredis, job_id) == {"a#1": 2, "b#1": 3, "c#1": 4}
    status = await _status(aredis, job_id)
    assert status["steps_done"] == "3"
    assert status["last_step"] == "c#1"
    body = _metrics(worker)
    labels = 'queue="workflow:queue",workflow="flow"'
    assert f'workflow_steps_total{{kind="replayed",{labels}}} 2.0' in body
    assert f'workflow_steps_total{{kind="ran",{labels}}} 3.0' in body


async def test_a_long_step_is_named_in_the_record_while_it_runs(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str
) -> None:
    """A step that runs longer than a moment shows as `step` in the job's record while it runs,
    and the name goes once it is recorded; a short step is never written there."""
    release = asyncio.Event()
    seen: list[dict[str, str]] = []

    async def slow() -> str:
        await release.wait()
        return "done"

    async def flow(payload: dict[str, Any], ctx: JobContext) -> str:
        await ctx.step("quick", lambda: 1)
        seen.append(await _status(aredis, ctx.job_id))
        result: str = await ctx.step("slow", slow)
        return result

    await start_worker(registry={"flow": flow})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flow", {})
        running = await wait_for(lambda: _step_shown(aredis, job_id), timeout=10)
        assert running["step"] == "slow#1"
        assert running["last_step"] == "quick#1"
        release.set()
        assert await client.result(job_id, timeout=10) == "done"
    assert "step" not in seen[0]
    final = await _status(aredis, job_id)
    assert "step" not in final
    assert final["last_step"] == "slow#1"


async def _step_shown(aredis: aioredis.Redis, job_id: str) -> dict[str, str] | None:
    status = await _status(aredis, job_id)
    return status if "step" in status else None


def _metrics(worker: Any) -> str:
    return generate_latest(worker.worker.prom).decode()


async def test_names_repeat_in_a_loop_and_unnamed_steps_take_the_function_name(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str
) -> None:
    """The same name called in a loop is recorded per occurrence; a step given no name is
    named after its function; both replay in order on the next attempt."""
    runs: list[int] = []

    async def page(i: int) -> int:
        runs.append(i)
        return i * 10

    async def flow(payload: dict[str, Any], ctx: JobContext) -> list[int]:
        got = [await ctx.step("page", page, i) for i in range(3)]
        got.append(await ctx.step(page, 7))
        if ctx.attempt == 1:
            raise RuntimeError("again")
        return got

    await start_worker(registry={"flow": flow})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flow", {}, max_attempts=2)
        assert await client.result(job_id, timeout=10) == [0, 10, 20, 70]
    assert runs == [0, 1, 2, 7], "each step ran once; the retry replayed them all"
    recorded = await _steps(aredis, job_id)
    qualname = page.__qualname__
    assert recorded == {"page#1": 0, "page#2": 10, "page#3": 20, f"{qualname}#1": 70}


async def test_a_sync_step_runs_in_a_thread(start_worker: WorkerFactory, redis_url: str) -> None:
    """A plain function given to ctx.step runs off the event loop's thread, with its args."""
    loop_thread: list[int] = []

    def blocking(x: int, *, y: int) -> dict[str, int]:
        time.sleep(0.05)
        return {"thread": threading.get_ident(), "sum": x + y}

    async def flow(payload: dict[str, Any], ctx: JobContext) -> dict[str, int]:
        loop_thread.append(threading.get_ident())
        result: dict[str, int] = await ctx.step("blocking", blocking, 1, y=2)
        return result

    await start_worker(registry={"flow": flow})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flow", {})
        result = await client.result(job_id, timeout=10)
    assert result["sum"] == 3
    assert result["thread"] != loop_thread[0]


async def test_a_result_that_is_not_json_fails_naming_the_step(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str
) -> None:
    """A step returning something JSON cannot carry fails the job with an error that names the
    step; nothing is recorded for it."""

    async def gives_a_set() -> set[int]:
        return {1, 2}

    async def flow(payload: dict[str, Any], ctx: JobContext) -> None:
        await ctx.step("make-set", gives_a_set)

    await start_worker(registry={"flow": flow})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flow", {}, max_attempts=1)
        await wait_for(lambda: _final(aredis, job_id))
    status = await _status(aredis, job_id)
    assert status["state"] == "failure"
    assert "StepResultError" in status["error"]
    assert "'make-set#1'" in status["error"]
    assert "not JSON" in status["error"]
    assert await _steps(aredis, job_id) == {}


async def _final(aredis: aioredis.Redis, job_id: str) -> bool:
    state = await aredis.hget(KEYS.job(job_id), "state")
    return state in (b"success", b"failure", b"dead")


async def test_a_result_over_the_size_limit_fails_naming_the_step(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str
) -> None:
    """A step result larger than WORKER_MAX_RESULT_BYTES is refused with its size and the step."""

    async def big() -> str:
        return "x" * 5000

    async def flow(payload: dict[str, Any], ctx: JobContext) -> None:
        await ctx.step("big", big)

    await start_worker(registry={"flow": flow}, max_result_bytes=1000)
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flow", {}, max_attempts=1)
        await wait_for(lambda: _final(aredis, job_id))
    error = (await _status(aredis, job_id))["error"]
    assert "'big#1'" in error
    assert "5002 bytes" in error
    assert "1000-byte limit" in error


async def test_the_same_id_enqueued_again_does_not_replay_the_earlier_run(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """Steps belong to one enqueue: a job id enqueued again after it finished runs its steps
    again rather than returning the earlier run's results."""
    counted = Counted()

    async def flow(payload: dict[str, Any], ctx: JobContext) -> int:
        result: int = await ctx.step("a", counted.fn("a"), payload["n"])
        return result

    await start_worker(registry={"flow": flow})
    async with Client(make_settings(redis_url)) as client:
        await client.enqueue("flow", {"n": 1}, id="same")
        assert await client.result("same", timeout=10) == 2
        await client.enqueue("flow", {"n": 5}, id="same")
        assert await client.result("same", timeout=10) == 6
    assert counted.runs == {"a": 2}


async def test_a_job_without_an_id_keeps_the_one_it_was_given_for_re_delivery(
    start_worker: WorkerFactory, aredis: aioredis.Redis
) -> None:
    """A message with no id is given one at claim; its first recorded step writes that id
    into the claimed message, so a crash re-delivery finds the job's steps."""
    proceed = asyncio.Event()
    seen: list[str] = []

    async def flow(payload: dict[str, Any], ctx: JobContext) -> str:
        seen.append(ctx.job_id)
        await ctx.step("a", _one)
        await proceed.wait()
        return "ok"

    await start_worker(registry={"flow": flow})
    await aredis.lpush(Q, json.dumps({"workflow": "flow", "payload": {}}))
    await wait_for(lambda: _recorded_count(aredis, seen))
    (claimed,) = await aredis.hvals(KEYS.processing)
    assert json.loads(claimed)["id"] == seen[0]
    assert await aredis.hget(KEYS.job(seen[0]), "steps_done") is None, "no record while running"
    proceed.set()


async def _one() -> int:
    return 1


async def _recorded_count(aredis: aioredis.Redis, seen: list[str]) -> bool:
    return bool(seen) and await aredis.hlen(KEYS.steps(seen[0])) == 2


async def test_ctx_sleep_frees_the_slot_and_resumes_after_recorded_steps(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str
) -> None:
    """A workflow that sleeps waits in the delayed set holding no slot (another job runs in
    it meanwhile), then resumes: the step before the sleep does not run again, nor the sleep."""
    counted = Counted()
    other_ran = asyncio.Event()

    async def sleeper(payload: dict[str, Any], ctx: JobContext) -> int:
        a = await ctx.step("a", counted.fn("a"), 1)
        await ctx.sleep(2.5)
        result: int = await ctx.step("b", counted.fn("b"), a)
        return result

    async def other(payload: dict[str, Any], ctx: JobContext) -> str:
        other_ran.set()
        return "ok"

    await start_worker(registry={"sleeper": sleeper, "other": other}, concurrency=1)
    async with Client(make_settings(redis_url)) as client:
        started = time.monotonic()
        job_id = await client.enqueue("sleeper", {})
        await wait_for(lambda: _delayed(aredis, job_id))
        assert await aredis.hlen(KEYS.processing) == 0
        await client.enqueue("other", {})
        await asyncio.wait_for(other_ran.wait(), 2.0)
        assert await client.result(job_id, timeout=15) == 3
        assert time.monotonic() - started >= 2.4
    assert counted.runs == {"a": 1, "b": 1}
    recorded = await _steps(aredis, job_id)
    assert set(recorded) == {"a#1", "sleep#1", "b#1"}
    status = await _status(aredis, job_id)
    assert status["attempt"] == "1", "a sleep is not an attempt"


async def _delayed(aredis: aioredis.Redis, job_id: str) -> bool:
    return await aredis.hget(KEYS.job(job_id), "state") == b"delayed"


async def test_a_drain_checkpoints_step_jobs_and_lets_plain_jobs_finish(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str
) -> None:
    """On stop with a 300 s drain timeout, a job using steps is requeued at its next step
    boundary (not counted as an attempt) while a job without steps runs to its end; the
    metrics say one finished and one checkpointed."""
    counted = Counted()

    async def stepper(payload: dict[str, Any], ctx: JobContext) -> int:
        value = 0
        for i in range(5):
            value = await ctx.step(f"s{i}", _slow_add, value)
            counted.runs[f"s{i}"] = counted.runs.get(f"s{i}", 0) + 1
        return value

    async def plain(payload: dict[str, Any], ctx: JobContext) -> str:
        await asyncio.sleep(1.0)
        return "done"

    worker = await start_worker(
        registry={"stepper": stepper, "plain": plain}, concurrency=2, shutdown_timeout=300
    )
    async with Client(make_settings(redis_url)) as client:
        step_job = await client.enqueue("stepper", {})
        plain_job = await client.enqueue("plain", {})
        await wait_for(lambda: _step_running(aredis, step_job, 1))
        started = time.monotonic()
        assert await worker.stop(timeout=30) == 0
        took = time.monotonic() - started
    assert took < 2.5, f"the drain took {took:.1f}s, far more than one 0.6 s step"
    status = await _status(aredis, plain_job)
    assert status["state"] == "success"
    assert (await _status(aredis, step_job))["state"] == "queued"
    (text,) = await aredis.lrange(Q, 0, -1)
    assert json.loads(text)["id"] == step_job
    assert json.loads(text).get("attempt", 1) == 1
    assert await aredis.hlen(KEYS.processing) == 0
    body = _metrics(worker)
    assert 'workflow_drain_jobs_total{outcome="checkpointed",queue="workflow:queue"} 1.0' in body
    assert 'workflow_drain_jobs_total{outcome="finished",queue="workflow:queue"} 1.0' in body
    assert 'workflow_jobs_requeued_total{queue="workflow:queue",reason="checkpoint"} 1.0' in body


async def _slow_add(value: int) -> int:
    await asyncio.sleep(0.6)
    return value + 1


async def _step_running(aredis: aioredis.Redis, job_id: str, done: int) -> bool:
    return await aredis.hget(KEYS.job(job_id), "steps_done") == str(done).encode()


async def test_jobs_without_steps_never_send_a_step_script(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str
) -> None:
    """Jobs that do not call ctx.step cost no step call: after they run, Redis has never
    been sent either step script (a first use would have loaded it)."""

    async def plain(payload: dict[str, Any], ctx: JobContext) -> int:
        return 1

    await aredis.script_flush()
    await start_worker(registry={"plain": plain})
    async with Client(make_settings(redis_url)) as client:
        ids = [await client.enqueue("plain", {}) for _ in range(20)]
        for job_id in ids:
            assert await client.result(job_id, timeout=10) == 1
    # SHA-1 is what Redis names scripts by, not a security measure here.
    names = ("steps_load", "step_record")
    shas = [hashlib.sha1(lua_source(n).encode(), usedforsecurity=False).hexdigest() for n in names]
    assert await aredis.script_exists(*shas) == [False, False]
    assert not [k async for k in aredis.scan_iter(match=KEYS.steps_prefix + "*")]


async def test_gathered_steps_are_numbered_in_call_order_and_replay(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str
) -> None:
    """Steps of one name started together (asyncio.gather) take occurrences in the order they
    were called, whatever order they finish in, and replay in that order on the next attempt."""
    runs: list[int] = []

    async def slow_echo(n: int) -> int:
        runs.append(n)
        await asyncio.sleep(0.05 * (3 - n))  # the later call finishes first
        return n

    async def flow(payload: dict[str, Any], ctx: JobContext) -> list[int]:
        got = await asyncio.gather(*[ctx.step("x", slow_echo, n) for n in (1, 2)])
        if ctx.attempt == 1:
            raise RuntimeError("again")
        return list(got)

    await start_worker(registry={"flow": flow})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flow", {}, max_attempts=2)
        assert await client.result(job_id, timeout=10) == [1, 2]
    assert sorted(runs) == [1, 2]
    assert await _steps(aredis, job_id) == {"x#1": 1, "x#2": 2}


async def test_a_worker_whose_claim_is_taken_back_mid_step_stops_without_an_outcome(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str
) -> None:
    """When the job's claim disappears while a step runs (taken back by a reaper), the step's
    record is refused, the workflow goes no further and the worker writes no outcome; its
    slot is free for the next job."""
    reached: list[str] = []
    in_b = asyncio.Event()
    release = asyncio.Event()

    async def b() -> str:
        in_b.set()
        await release.wait()
        return "b"

    async def flow(payload: dict[str, Any], ctx: JobContext) -> str:
        await ctx.step("a", _one)
        await ctx.step("b", b)
        reached.append("after b")
        return "done"

    async def other(payload: dict[str, Any], ctx: JobContext) -> str:
        return "ok"

    await start_worker(registry={"flow": flow, "other": other}, concurrency=1)
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flow", {})
        await asyncio.wait_for(in_b.wait(), 10)
        (token,) = await aredis.hkeys(KEYS.processing)
        await aredis.hdel(KEYS.processing, token)
        release.set()
        other_id = await client.enqueue("other", {})
        assert await client.result(other_id, timeout=10) == "ok"
    assert reached == []
    assert set(await _steps(aredis, job_id)) == {"a#1"}
    assert (await _status(aredis, job_id))["state"] == "running", "no outcome was written"


async def test_bad_step_and_sleep_calls_fail_clearly(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A step without a callable, a negative sleep and the 1001st step call of one attempt
    each raise an error that says what is wrong."""
    errors: list[str] = []

    async def flow(payload: dict[str, Any], ctx: JobContext) -> list[str]:
        for bad in (ctx.step("a", 5), ctx.sleep(-1)):
            try:
                await bad
            except (TypeError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        try:
            for _ in range(1001):
                await ctx.step("tick", _one)
        except StepLimitError as exc:
            errors.append(str(exc))
        return errors

    await start_worker(registry={"flow": flow})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flow", {})
        got = await client.result(job_id, timeout=60)
    assert got[0].startswith("TypeError: ctx.step('a', fn, ...): the second argument")
    assert got[1].startswith("ValueError: ctx.sleep: seconds must be finite and >= 0")
    assert "'tick'" in got[2]
    assert "over the limit of 1000" in got[2]


async def test_a_dead_job_requeued_resumes_after_its_recorded_steps(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str
) -> None:
    """A job that used up its attempts after one recorded step, once requeued from the
    dead-letter list (the cause fixed), goes on from its second step: the first does not run
    again."""
    counted = Counted()
    broken = [True]

    async def flow(payload: dict[str, Any], ctx: JobContext) -> int:
        a = await ctx.step("a", counted.fn("a"), 1)
        if broken[0]:
            raise RuntimeError("a bug in step two")
        result: int = await ctx.step("b", counted.fn("b"), a)
        return result

    await start_worker(registry={"flow": flow})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flow", {}, max_attempts=1)
        await wait_for(lambda: _final(aredis, job_id))
        broken[0] = False
        assert await client.requeue_dead(0)
        assert await client.result(job_id, timeout=10) == 3
    assert counted.runs == {"a": 1, "b": 1}


async def test_recorded_steps_are_read_once_per_attempt_not_per_step(
    start_worker: WorkerFactory, aredis: aioredis.Redis
) -> None:
    """An attempt that replays five recorded steps reads them in one call: the server runs
    one HGETALL for the whole attempt (the first attempt, with nothing recorded, none)."""

    async def flow(payload: dict[str, Any], ctx: JobContext) -> int:
        total = 0
        for i in range(5):
            total += await ctx.step("s", _echo, i)
        if ctx.attempt == 1:
            raise RuntimeError("again")
        return total

    await start_worker(registry={"flow": flow})
    await aredis.config_resetstat()
    job = {"workflow": "flow", "id": "once", "payload": {}, "max_attempts": 2}
    await aredis.lpush(Q, json.dumps(job))
    await wait_for(lambda: _final(aredis, "once"))
    stats = await aredis.info("commandstats")
    assert stats["cmdstat_hgetall"]["calls"] == 1
    assert await aredis.hget(KEYS.job("once"), "state") == b"success"


async def _echo(i: int) -> int:
    return i


async def test_a_step_records_after_its_connection_was_cut(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """When Redis drops every client connection between two steps, the next step's record
    reconnects and lands, and the job finishes with each step run once."""
    counted = Counted()
    cut = asyncio.Event()
    go_on = asyncio.Event()

    async def flow(payload: dict[str, Any], ctx: JobContext) -> int:
        a = await ctx.step("a", counted.fn("a"), 1)
        cut.set()
        await go_on.wait()
        result: int = await ctx.step("b", counted.fn("b"), a)
        return result

    await start_worker(registry={"flow": flow})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flow", {})
    await asyncio.wait_for(cut.wait(), 10)
    with redis.Redis.from_url(redis_url) as admin:
        killed = admin.client_kill_filter(_type="normal", skipme=True)
    assert int(killed) >= 2, "the worker's connections, the step line among them"
    go_on.set()
    async with Client(make_settings(redis_url)) as client:
        assert await client.result(job_id, timeout=15) == 3
    assert counted.runs == {"a": 1, "b": 1}


async def test_a_drain_deadline_inside_a_step_counts_the_job_requeued_mid_step(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str
) -> None:
    """A step longer than the drain timeout is cancelled at the deadline: the job is requeued
    (the step will run again) and counted as requeued mid-step, not checkpointed."""
    started = asyncio.Event()

    async def long_step() -> int:
        started.set()
        await asyncio.sleep(30)
        return 1

    async def flow(payload: dict[str, Any], ctx: JobContext) -> int:
        result: int = await ctx.step("long", long_step)
        return result

    worker = await start_worker(registry={"flow": flow}, shutdown_timeout=0.3)
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flow", {})
        await asyncio.wait_for(started.wait(), 10)
    assert await worker.stop(timeout=30) == 0
    assert (await _status(aredis, job_id))["state"] == "queued"
    assert await _steps(aredis, job_id) == {}
    body = _metrics(worker)
    assert (
        'workflow_drain_jobs_total{outcome="requeued_mid_step",queue="workflow:queue"} 1.0' in body
    )
    assert 'workflow_drain_jobs_total{outcome="checkpointed",queue="workflow:queue"} 0.0' in body


async def test_a_step_that_cannot_be_recorded_stops_the_workflow(tmp_path: Path) -> None:
    """With Redis down for longer than the record's retries, the workflow does not go past
    the step (StepNotRecorded fails the attempt); once Redis is back, the retry replays the
    recorded step before it and runs the unrecorded one again."""
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    counted = Counted()
    went_on: list[int] = []
    in_b = asyncio.Event()
    release = asyncio.Event()

    async def b(value: int) -> int:
        in_b.set()
        await release.wait()
        return value + 1

    async def flow(payload: dict[str, Any], ctx: JobContext) -> int:
        a = await ctx.step("a", counted.fn("a"), 1)
        result: int = await ctx.step("b", b, a)
        went_on.append(ctx.attempt)
        return result

    settings = make_settings(server.url, lease_seconds=30.0)
    worker = Worker(settings, registry={"flow": flow})
    ready = asyncio.Event()
    task = asyncio.create_task(worker.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        async with Client(settings) as client:
            job_id = await client.enqueue("flow", {}, max_attempts=3)
        await asyncio.wait_for(in_b.wait(), 10)
        server.stop()
        release.set()
        await asyncio.sleep(4.0)  # past the record's retries (about 3 s)
        assert went_on == []
        in_b.clear()
        release.clear()
        server.start()
        await asyncio.wait_for(in_b.wait(), 20)
        release.set()
        async with Client(settings) as client:
            assert await client.result(job_id, timeout=20) == 3
        assert went_on == [2]
        assert counted.runs == {"a": 1}
        body = generate_latest(worker.prom).decode()
        assert 'status="retried",workflow="flow"} 1.0' in body
    finally:
        worker.request_stop()
        worker.request_stop()
        await asyncio.wait_for(task, 60)
        server.stop()


async def test_a_sleep_recorded_on_a_worker_whose_clock_is_off_lasts_its_length_elsewhere(
    start_worker: WorkerFactory, aredis: aioredis.Redis, redis_url: str, monkeypatch: Any
) -> None:
    """A sleep recorded by a worker whose clock is 120 s ahead, and resumed by one whose clock
    is right, lasts its own length: its wake-up time is kept on the server's clock, as every
    due time is (docs/guarantees.md), not on the clock of whichever worker recorded it."""
    skew = [120.0]
    real = time.time
    clock = types.SimpleNamespace(time=lambda: real() + skew[0], monotonic=time.monotonic)
    monkeypatch.setattr(steps_module, "time", clock)
    counted = Counted()

    async def sleeper(payload: dict[str, Any], ctx: JobContext) -> int:
        a = await ctx.step("a", counted.fn("a"), 1)
        await ctx.sleep(2.5)
        result: int = await ctx.step("b", counted.fn("b"), a)
        return result

    await start_worker(registry={"sleeper": sleeper}, concurrency=1)
    async with Client(make_settings(redis_url)) as client:
        started = time.monotonic()
        job_id = await client.enqueue("sleeper", {})
        await wait_for(lambda: _delayed(aredis, job_id))
        skew[0] = 0.0  # the attempt after the sleep: a worker whose clock is right
        assert await client.result(job_id, timeout=20) == 3
        assert 2.4 <= time.monotonic() - started < 10
    assert counted.runs == {"a": 1, "b": 1}


async def test_steps_outside_a_worker_say_they_need_one() -> None:
    """ctx.step and ctx.sleep in a context no worker made (an eager test run) fail with a
    clear error naming the call."""

    async def stepped(payload: dict[str, Any], ctx: JobContext) -> None:
        await ctx.step("a", lambda: 1)

    async def sleeper(payload: dict[str, Any], ctx: JobContext) -> None:
        await ctx.sleep(5)

    for flow, call in ((stepped, "ctx.step"), (sleeper, "ctx.sleep")):
        with pytest.raises(RuntimeError) as raised:
            await run_workflow(flow, {})
        assert str(raised.value) == f"{call} needs a worker: this context was not made by one"
