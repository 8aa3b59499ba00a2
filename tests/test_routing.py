"""Declared queues (`@workflows.workflow(queue=...)`): clients given `workflows=` send jobs to
their workflow's queue and find them there by id; the CLI with `--route`; the worker's warning
about a declared queue it does not consume. Against a real server and real workers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis

from tests.conftest import WorkerFactory, make_settings, run_cli
from tests.routed_flows import WORKFLOWS as ROUTED
from workflow_worker import Workflows
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.client import Client, DuplicateJob, JobSpec, SyncClient
from workflow_worker.workflows.context import JobContext

DEFAULT = QueueKeys.for_queue("workflow:queue")
HIGH = QueueKeys.for_queue("high")
BULK = QueueKeys.for_queue("bulk")


def registry() -> Workflows:
    workflows = Workflows()

    @workflows.workflow(queue="high")
    async def urgent(payload: dict[str, Any], ctx: JobContext) -> str:
        return f"urgent:{payload['n']}:{ctx.queue}"

    @workflows.workflow(queue="bulk")
    async def slow(payload: dict[str, Any], ctx: JobContext) -> str:
        return f"slow:{payload['n']}:{ctx.queue}"

    @workflows.workflow
    async def plain(payload: dict[str, Any], ctx: JobContext) -> str:
        return f"plain:{payload['n']}:{ctx.queue}"

    return workflows


def test_queue_is_recorded_and_a_bad_name_is_refused_naming_the_workflow() -> None:
    """`queue=` is recorded and read back by `queue_of`; a name WORKER_QUEUE would refuse (empty,
    with a comma, with blanks, not a string) is refused with the workflow's name."""
    workflows = registry()
    assert workflows.queue_of("urgent") == "high"
    assert workflows.queue_of("plain") is None
    assert workflows.queue_of("missing") is None
    for bad in ("", "a,b", " high", 7):
        with pytest.raises(ValueError, match="workflow 'resize': queue must be one queue name"):
            workflows.workflow("resize", queue=bad)(lambda payload, ctx: None)  # type: ignore[arg-type]
    assert "resize" not in workflows


async def test_jobs_go_to_their_declared_queue_and_are_found_there(
    start_worker: WorkerFactory, redis_url: str, aredis: Any
) -> None:
    """A routed client sends `urgent` to `high` and `plain` to its own queue; a worker consuming
    both runs them, and `status`/`result` find each in its queue."""
    workflows = registry()
    await start_worker(registry=workflows, queues=("workflow:queue", "high", "bulk"))
    async with Client(make_settings(redis_url), workflows=workflows) as client:
        urgent = await client.enqueue("urgent", {"n": 1})
        plain = await client.enqueue("plain", {"n": 2})
        assert await client.result(urgent, timeout=10) == "urgent:1:high"
        assert await client.result(plain, timeout=10) == "plain:2:workflow:queue"
        record = await client.status(urgent)
        assert record is not None
        assert record["state"] == "success"
        assert await client.status("nobody") is None
    assert await aredis.exists(HIGH.job(urgent)) == 1
    assert await aredis.exists(DEFAULT.job(urgent)) == 0
    # A client without the registry is bound to its queue, as before: it does not see the job.
    async with Client(make_settings(redis_url)) as plain_client:
        assert await plain_client.status(urgent) is None


async def test_a_batch_spanning_queues_is_one_call_per_queue_in_input_order(
    redis_url: str, aredis: Any
) -> None:
    """`submit` over three queues answers in input order and leaves each job in its queue's
    list, in its order within that queue."""
    workflows = registry()
    names = ["plain", "urgent", "slow", "urgent", "plain", "slow"]
    specs = [JobSpec(name, {"n": i}, id=f"j{i}") for i, name in enumerate(names)]
    async with Client(make_settings(redis_url), workflows=workflows) as client:
        results = await client.submit(specs)
    assert [r.id for r in results] == [f"j{i}" for i in range(6)]
    assert all(r.created for r in results)
    for keys, expected in ((DEFAULT, ["j0", "j4"]), (HIGH, ["j1", "j3"]), (BULK, ["j2", "j5"])):
        assert await aredis.llen(keys.queue) == 2
        for job_id in expected:
            assert await aredis.hget(keys.job(job_id), "state") == b"queued"


async def test_a_bad_spec_anywhere_in_a_routed_batch_writes_nothing(
    redis_url: str, aredis: Any
) -> None:
    """Every queue's call is built before the first is sent: a bad spec for one queue leaves
    the other queues untouched."""
    workflows = registry()
    specs = [JobSpec("urgent", {"n": 1}), JobSpec("plain", {"n": 2}, max_attempts=0)]
    async with Client(make_settings(redis_url), workflows=workflows) as client:
        with pytest.raises(ValueError, match="max_attempts"):
            await client.submit(specs)
    assert await aredis.llen(HIGH.queue) == 0
    assert await aredis.llen(DEFAULT.queue) == 0


async def test_unique_ids_and_keys_hold_per_declared_queue(redis_url: str) -> None:
    """An id or unique key taken in `high` makes a second routed enqueue a duplicate; the same
    key in another queue is another job."""
    workflows = registry()
    async with Client(make_settings(redis_url), workflows=workflows) as client:
        first = await client.enqueue("urgent", {"n": 1}, id="once")
        with pytest.raises(DuplicateJob):
            await client.enqueue("urgent", {"n": 2}, id="once")
        holder = await client.enqueue("urgent", {"n": 3}, unique_key="k")
        again = await client.submit(
            [
                JobSpec("urgent", {"n": 4}, unique_key="k"),
                JobSpec("plain", {"n": 5}, unique_key="k"),
            ]
        )
    assert first == "once"
    assert [r.created for r in again] == [False, True]
    assert again[0].id == holder


async def test_cancel_finds_a_routed_job(redis_url: str, aredis: Any) -> None:
    """`cancel` of a job waiting in a declared queue cancels it there; an unknown id answers
    "unknown" as before."""
    workflows = registry()
    async with Client(make_settings(redis_url), workflows=workflows) as client:
        job_id = await client.enqueue("urgent", {"n": 1}, delay=60)
        assert await client.cancel(job_id) == "cancelled"
        assert await client.cancel("nobody") == "unknown"
        record = await client.status(job_id)
    assert record is not None
    assert record["state"] == "cancelled"
    assert await aredis.hget(HIGH.job(job_id), "state") == b"cancelled"
    assert await aredis.exists(DEFAULT.job(job_id)) == 0


async def test_sync_client_routes_and_finds_jobs(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """`SyncClient(workflows=...)` routes each job, keeps batch order, and finds, waits for and
    cancels jobs in the declared queues."""
    workflows = registry()
    await start_worker(registry=workflows, queues=("high",))

    def produce() -> tuple[list[str], Any, str, Any, Any]:
        with SyncClient(make_settings(redis_url), workflows=workflows) as client:
            ids = client.enqueue_many([JobSpec("plain", {"n": 0}), JobSpec("urgent", {"n": 1})])
            answer = client.result(ids[1], timeout=10)
            parked = client.enqueue("slow", {"n": 2}, delay=60)
            cancelled = client.cancel(parked)
            return ids, answer, cancelled, client.status(ids[0]), client.status(parked)

    ids, answer, cancelled, waiting, parked = await asyncio.to_thread(produce)
    assert ids[0] != ids[1]
    assert answer == "urgent:1:high"
    assert cancelled == "cancelled"
    assert waiting["state"] == "queued"  # nobody consumes the client's own queue here
    assert parked["state"] == "cancelled"
    with redis.Redis.from_url(redis_url) as plain:
        assert plain.llen(DEFAULT.queue) == 1


async def test_a_client_without_declared_queues_uses_only_its_own(
    redis_url: str, aredis: Any
) -> None:
    """A registry that declares no queue, or a plain dict, leaves a client exactly as without
    it (no routes); something that is not a registry is refused."""
    workflows = Workflows()
    workflows.workflow("plain")(registry()["plain"])
    async with Client(make_settings(redis_url), workflows=workflows) as client:
        assert client.routes is None
        await client.enqueue("plain", {"n": 1})
    async with Client(make_settings(redis_url), workflows={"plain": workflows["plain"]}) as other:  # type: ignore[arg-type]
        assert other.routes is None
    with pytest.raises(TypeError, match="takes a Workflows registry"):
        Client(make_settings(redis_url), workflows=object())  # type: ignore[arg-type]
    assert await aredis.llen(DEFAULT.queue) == 1


async def test_worker_warns_about_a_declared_queue_it_does_not_consume(
    start_worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker consuming only `high` logs one WARNING for `slow` (queue `bulk`) and none for
    `urgent`, and still starts."""
    caplog.set_level(logging.WARNING, logger="workflow_worker")
    await start_worker(registry=registry(), queues=("high", "workflow:queue"))
    warnings = [r for r in caplog.records if "does not consume" in r.getMessage()]
    assert len(warnings) == 1
    assert getattr(warnings[0], "workflow", None) == "slow"
    assert getattr(warnings[0], "queue", None) == "bulk"
    assert warnings[0].levelno == logging.WARNING


def test_cli_enqueue_routes_with_the_route_flag(redis_url: str) -> None:
    """`enqueue --route` loads WORKER_WORKFLOWS and sends `urgent` to `high`; `job --route` and
    `cancel --route` find it there; without the flag the job stays on WORKER_QUEUE."""
    flows = "tests.routed_flows:WORKFLOWS"
    assert ROUTED.queue_of("urgent") == "high"
    out = run_cli(
        redis_url, "enqueue", "urgent", "--route", "--delay", "60", WORKER_WORKFLOWS=flows
    )
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    with redis.Redis.from_url(redis_url) as plain:
        assert plain.zcard(HIGH.delayed) == 1
        assert plain.zcard(DEFAULT.delayed) == 0
        assert run_cli(redis_url, "job", job_id, WORKER_WORKFLOWS=flows).returncode == 1
        shown = run_cli(redis_url, "job", job_id, "--route", WORKER_WORKFLOWS=flows)
        assert shown.returncode == 0
        assert "delayed" in shown.stdout
        cancel = run_cli(redis_url, "cancel", job_id, "--route", WORKER_WORKFLOWS=flows)
        assert cancel.stdout.strip() == f"{job_id}: cancelled"
        plain_registry = run_cli(
            redis_url, "enqueue", "echo", "--route", WORKER_WORKFLOWS="tests.flows:WORKFLOWS"
        )
        assert plain_registry.returncode == 0, plain_registry.stderr
        assert plain.llen(DEFAULT.queue) == 1
        unrouted = run_cli(redis_url, "enqueue", "urgent", WORKER_WORKFLOWS=flows)
        assert unrouted.returncode == 0
        assert plain.llen(DEFAULT.queue) == 2
        assert plain.llen(HIGH.queue) == 0


async def test_a_job_in_the_clients_own_queue_costs_one_read(redis_url: str, aredis: Any) -> None:
    """`status` of a job in the client's own queue is one HGETALL, routed or not; a job in a
    declared queue costs one more pipelined read per other declared queue."""
    workflows = registry()

    async def hgetalls() -> int:
        stats = await aredis.info("commandstats")
        return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))

    async with Client(make_settings(redis_url), workflows=workflows) as client:
        own = await client.enqueue("plain", {"n": 1})
        routed = await client.enqueue("slow", {"n": 2})
        await aredis.config_resetstat()
        assert await client.status(own) is not None
        assert await hgetalls() == 1
        assert await client.status(routed) is not None
        assert await hgetalls() == 1 + 1 + len(client.routes.others if client.routes else ())
    async with Client(make_settings(redis_url)) as plain:
        await aredis.config_resetstat()
        assert await plain.status(own) is not None
        assert await plain.status("nobody") is None
        assert await hgetalls() == 2
