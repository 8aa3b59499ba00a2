"""Composition against a real Redis and in-process workers: groups (chords), chains, and child
jobs from workflows, each created once and joined exactly once."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.compose_flows import RUNS, WORKFLOWS
from tests.conftest import WorkerFactory, make_settings, wait_for
from workflow_worker.engine.groups import Member, MemberEnd
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.queue import Op, RedisQueue
from workflow_worker.engine.reclaim import reap
from workflow_worker.engine.scripts import lua_source
from workflow_worker.producer.client import Client, JobSpec
from workflow_worker.producer.compose import Chain

Q = "workflow:queue"
KEYS = QueueKeys.for_queue(Q)


async def _runs(aredis: aioredis.Redis, tag: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in await aredis.lrange(f"{RUNS}:{tag}", 0, -1)]


async def test_group_callback_gets_every_result_in_order(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """A group's callback runs once, after every member, with their results in member order
    (not finishing order), and the group's record shows its progress."""
    await start_worker(registry=WORKFLOWS, concurrency=10)
    async with Client(make_settings(redis_url)) as client:
        members = [JobSpec("double", {"n": n, "seconds": 0.05 * (5 - n)}) for n in range(5)]
        gid = await client.group(members, then=JobSpec("collect", {"tag": "g"}))
        answer = await client.result(gid, timeout=20)
        assert [r["result"] for r in answer["results"]] == [0, 2, 4, 6, 8]
        assert [r["id"] for r in answer["results"]] == [f"{gid}.{n}" for n in range(5)]
        assert {r["state"] for r in answer["results"]} == {"success"}
        record = await client.status(gid)
        assert record is not None
        assert (record["state"], record["group_total"], record["group_done"]) == ("success", 5, 5)
        assert record["group_failed"] == 0
        member = await client.status(f"{gid}.3")
        assert member is not None
        assert (member["group"], member["group_index"], member["state"]) == (gid, 3, "success")
    assert len(await _runs(aredis, "g")) == 1


async def test_group_callback_runs_after_final_failures_and_cancels(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """Members that fail for good, are cancelled, or name an unknown workflow still end the
    group: the callback runs once with their states and errors in place of results."""
    async with Client(make_settings(redis_url)) as client:
        members = [
            JobSpec("double", {"n": 1}),
            JobSpec("double", {"n": 2, "fail": True}, max_attempts=2),
            JobSpec("double", {"n": 3}),
            JobSpec("no-such-workflow", {}),
        ]
        gid = await client.group(members, then=JobSpec("collect", {"tag": "f"}))
        assert await client.cancel(f"{gid}.2") == "cancelled"
        await start_worker(registry=WORKFLOWS)
        answer = await client.result(gid, timeout=20)
        states = [r["state"] for r in answer["results"]]
        assert states == ["success", "failure", "cancelled", "dead"]
        assert answer["results"][0]["result"] == 2
        assert "fails on purpose" in answer["results"][1]["error"]
        assert "unknown workflow" in answer["results"][3]["error"]
        record = await client.status(gid)
        assert record is not None
        assert (record["group_done"], record["group_failed"]) == (4, 3)
    assert len(await _runs(aredis, "f")) == 1


async def test_group_without_callback_ends_with_the_outcomes(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A group without a callback is itself a result: the list of its members' outcomes."""
    await start_worker(registry=WORKFLOWS)
    async with Client(make_settings(redis_url)) as client:
        gid = await client.group([JobSpec("double", {"n": n}) for n in range(3)])
        outcomes = await client.result(gid, timeout=20)
        assert [o["result"] for o in outcomes] == [0, 2, 4]


async def test_a_group_is_created_once_per_id(redis_url: str, aredis: aioredis.Redis) -> None:
    """Asking again for a group id that exists (a lost reply, a second producer) writes
    nothing: its members are not enqueued twice."""
    async with Client(make_settings(redis_url)) as client:
        specs = [JobSpec("double", {"n": n}) for n in range(3)]
        assert await client.group(specs, then=JobSpec("collect"), id="batch-7") == "batch-7"
        assert await client.group(specs, then=JobSpec("collect"), id="batch-7") == "batch-7"
    assert await aredis.llen(Q) == 3
    record = await aredis.hgetall(KEYS.job("batch-7"))
    assert record[b"state"] == b"waiting"
    assert record[b"group_total"] == b"3"


async def _equals(pending: Awaitable[Any], expected: object) -> bool:
    return bool(await pending == expected)


async def test_a_cancelled_callback_is_not_enqueued(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """Cancelling a group's callback while it waits keeps it from running when the group
    ends; the members still run and the progress is still counted."""
    async with Client(make_settings(redis_url)) as client:
        gid = await client.group(
            [JobSpec("double", {"n": 1, "tag": "c"})], then=JobSpec("collect", {"tag": "cb"})
        )
        assert await client.cancel(gid) == "cancelled"
        await start_worker(registry=WORKFLOWS)
        # The record holds group_done "0" from the start: wait for the member's end.
        await wait_for(lambda: _equals(aredis.hget(KEYS.job(gid), "group_done"), b"1"))
        record = await client.status(gid)
        assert record is not None
        assert record["state"] == "cancelled"
    assert await aredis.llen(Q) == 0
    assert await _runs(aredis, "cb") == []


async def test_a_chain_passes_each_result_to_the_next_job(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """`a | b | c` runs in order, each link given the previous one's outcome; the last
    link's result is the chain's."""
    await start_worker(registry=WORKFLOWS)
    async with Client(make_settings(redis_url)) as client:
        chain = JobSpec("add", {"start": 1, "n": 10}) | JobSpec("add", {"n": 100})
        chain = chain | JobSpec("add", {"n": 1000})
        assert isinstance(chain, Chain)
        ids = await client.chain(chain, id="sum")
        assert ids == ["sum.0", "sum.1", "sum.2"]
        assert await client.result(ids[-1], timeout=20) == 1111
        middle = await client.status(ids[1])
        assert middle is not None
        assert (middle["state"], middle["chain"], middle["result"]) == ("success", "sum", "111")


async def test_a_failing_link_ends_the_chain(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """When a link fails for good, the links after it never run: their records say
    `cancelled`, naming the link that stopped the chain."""
    await start_worker(registry=WORKFLOWS)
    async with Client(make_settings(redis_url)) as client:
        ids = await client.chain(
            [
                JobSpec("add", {"n": 1, "tag": "ch"}),
                JobSpec("add", {"n": 2, "fail": True, "tag": "ch"}, max_attempts=1),
                JobSpec("add", {"n": 3, "tag": "ch"}),
                JobSpec("add", {"n": 4, "tag": "ch"}),
            ]
        )
        await wait_for(lambda: _ended(client, ids[3]), timeout=20)
        for later in ids[2:]:
            record = await client.status(later)
            assert record is not None
            assert record["state"] == "cancelled"
            assert ids[1] in record["error"]
        failed = await client.status(ids[1])
        assert failed is not None
        assert failed["state"] == "failure"
    assert len(await _runs(aredis, "ch")) == 2


async def _ended(client: Client, job_id: str) -> bool:
    record = await client.status(job_id)
    return record is not None and record["state"] in ("success", "failure", "cancelled", "dead")


async def test_children_of_a_workflow_are_created_once_across_attempts(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """A workflow that enqueues children and a group, then fails and runs again, gets the
    same ids back: every child runs once, the group's callback once, and the records link
    parent and children both ways."""
    await start_worker(registry=WORKFLOWS, concurrency=10)
    async with Client(make_settings(redis_url)) as client:
        pid = await client.enqueue("parent", {"tag": "p", "fail_first": True}, id="P")
        first, second, group = await client.result(pid, timeout=20)
        assert (first, second, group) == ("P.child-0", "P.second", "P.group-0")
        await client.result(group, timeout=20)
        record = await client.status(pid)
        assert record is not None
        assert record["children"] == [first, second, group]
        assert record["attempt"] == 2
        child = await client.status(second)
        assert child is not None
        assert child["parent"] == "P"
        members = await client.status(f"{group}.0")
        assert members is not None
        assert members["parent"] == "P"
    runs = await _runs(aredis, "p")
    ran = sorted(r["job"] for r in runs)
    # The parent twice; each child, each member and the callback once.
    expected = ["P", "P", "P.child-0", "P.group-0", *[f"P.group-0.{n}" for n in range(3)]]
    assert ran == sorted([*expected, "P.second"])


async def test_a_child_enqueue_outside_a_worker_fails_clearly() -> None:
    """A context built by hand (a unit test of a workflow) says why it cannot enqueue."""
    from workflow_worker.workflows.compose import start_group

    class Bare:
        job_id = "x"
        composer = None

    with pytest.raises(RuntimeError, match="not made by a worker"):
        await start_group(Bare(), [JobSpec("double")], None, None)  # type: ignore[arg-type]


async def test_a_member_dead_lettered_by_the_reaper_ends_in_its_group(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    """A member whose workers kept dying is dead-lettered by the reaper (crash budget), and
    that dead letter counts: the group ends and its callback is enqueued in the same call."""
    settings = make_settings(redis_url, crash_redelivery_limit=0)
    async with Client(settings) as client:
        gid = await client.group([JobSpec("double", {"n": 1})], then=JobSpec("collect"))
    text = await aredis.rpop(Q)
    assert isinstance(text, bytes)
    # The member as a worker that has since died would hold it: claimed, no lease.
    await aredis.hset(KEYS.processing, "gone-worker|1:0", text)
    queue = RedisQueue(aredis, Q)
    reaped = await reap(queue, settings, full_scan=True)
    assert reaped.dead_lettered == 1
    record = await aredis.hgetall(KEYS.job(gid))
    assert (record[b"state"], record[b"group_done"], record[b"group_failed"]) == (
        b"queued",
        b"1",
        b"1",
    )
    head = await aredis.lindex(Q, 0)
    assert isinstance(head, bytes)
    callback = json.loads(head)
    assert callback["id"] == gid
    assert "enqueued_at" not in callback, "a callback is not as old as its group"
    assert callback["payload"]["results"][0]["state"] == "dead"
    assert "crash redelivery budget" in callback["payload"]["results"][0]["error"]


async def test_a_member_outcome_applied_twice_counts_once(aredis: aioredis.Redis) -> None:
    """The group-end block records each member once: the same member's end sent again (a
    job requeued from the dead letters and ending again) neither counts nor pushes twice."""
    settings = make_settings("redis://unused")
    from workflow_worker.producer.compose import group_call

    call, composed = group_call(
        [JobSpec("double"), JobSpec("double")], JobSpec("collect"), settings, KEYS, "G"
    )
    queue = RedisQueue(aredis, Q)
    await queue.scripts.group(keys=call.keys, args=call.args)
    await aredis.delete(Q)
    end = MemberEnd(Member("G", 0), "G.0", "success", '{"id":"G.0","state":"success","result":1}')
    for n in range(3):
        await aredis.hset(KEYS.processing, f"w|{n}:0", "{}")
        await aredis.zadd(KEYS.workers, {"w": 1e15})
        op = Op("done", f"w|{n}:0", "G.0", status={"state": "success"}, member=end)
        assert await queue.apply([op], 60) == [1]
    assert await aredis.hget(KEYS.group("G"), "done") == b"1"
    assert await aredis.llen(Q) == 0
    assert composed.jobs == ("G.0", "G.1")


def test_apply_and_reap_carry_the_same_group_end_block() -> None:
    """The block that records a member's end is the same in both scripts that end jobs, as
    Redis is sent them."""

    def block(name: str) -> str:
        text = lua_source(name)
        return text[text.index("-- group-end: begin") : text.index("-- group-end: end")]

    assert block("apply") == block("reap")
    assert "local function group_end" in block("apply")


async def test_jobs_outside_groups_carry_nothing_more(aredis: aioredis.Redis) -> None:
    """A plain job's op is encoded exactly as before: ten fields, no group keys."""
    queue = RedisQueue(aredis, Q)
    keys, args = queue._apply_args([Op("done", "w|1:0", "plain", status={"state": "x"})], 60, True)
    assert isinstance(args[1], bytes)
    ops = json.loads(args[1])
    assert len(ops[0]) == 10
    assert not any(":group:" in key for key in keys)


def test_group_and_chain_arguments_are_checked() -> None:
    """Bad compositions are refused before anything is written, naming what is wrong."""
    from workflow_worker.producer.compose import chain_call, group_call

    settings = make_settings("redis://unused")
    with pytest.raises(ValueError, match="1 to"):
        group_call([], None, settings, KEYS)
    with pytest.raises(ValueError, match="names its jobs"):
        group_call([JobSpec("double", id="mine")], None, settings, KEYS)
    with pytest.raises(ValueError, match="reserved"):
        group_call([JobSpec("double")], JobSpec("collect", {"results": 1}), settings, KEYS)
    with pytest.raises(ValueError, match="first job may be delayed"):
        chain_call([JobSpec("add"), JobSpec("add", delay=5)], settings, KEYS)


async def test_cancelling_a_waiting_link_stops_the_rest_of_the_chain(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """A chain link cancelled while it waits never runs, and neither do the links after it:
    they end `cancelled` when the link before the cancelled one ends."""
    async with Client(make_settings(redis_url)) as client:
        ids = await client.chain([JobSpec("add", {"n": n, "tag": "cx"}) for n in range(4)], id="cx")
        assert await client.cancel(ids[1]) == "cancelled"
        await start_worker(registry=WORKFLOWS)
        await wait_for(lambda: _ended(client, ids[3]), timeout=20)
        for later in ids[2:]:
            record = await client.status(later)
            assert record is not None
            assert (record["state"], record["error"]) == (
                "cancelled",
                "not run: an earlier link of the chain was cancelled",
            )
    assert [r["job"] for r in await _runs(aredis, "cx")] == [ids[0]]


async def test_a_member_of_an_expired_group_ends_like_a_plain_job(
    aredis: aioredis.Redis,
) -> None:
    """A member whose group is gone (expired after `WORKER_RESULT_TTL` with no member ending)
    ends normally, and the script writes no group state for it."""
    queue = RedisQueue(aredis, Q)
    await aredis.hset(KEYS.processing, "w|1:0", "{}")
    await aredis.zadd(KEYS.workers, {"w": 1e15})
    end = MemberEnd(Member("gone", 0), "gone.0", "success", '{"id":"gone.0"}')
    op = Op("done", "w|1:0", "gone.0", status={"state": "success"}, member=end)
    assert await queue.apply([op], 60) == [1]
    assert await aredis.hget(KEYS.job("gone.0"), "state") == b"success"
    assert not await aredis.exists(KEYS.group("gone"), KEYS.job("gone"))
