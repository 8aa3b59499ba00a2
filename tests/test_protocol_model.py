"""The queue protocol as a hypothesis state machine against a real server.

Enqueues, claims, acknowledgements of every kind, promotions, reaps, audits and cancels are
interleaved with the faults the protocol must survive: a claim or acknowledgement whose reply is
lost after the server acted (the worker sends it again, or never learns of it), and workers that
die (their lease lapses) and sometimes come back to acknowledge late. After every step each job
is in exactly one place (waiting, claimed, delayed or dead-lettered), or finished.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import hypothesis.strategies as st
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.servers import RedisServer
from workflow_worker.engine import reclaim
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.queue import Op, RedisQueue
from workflow_worker.producer.client import Client
from workflow_worker.settings import Settings

Q = "model:queue"
KEYS = QueueKeys.for_queue(Q)
LIMIT = 1 << 20
WORKERS = ("w0", "w1", "w2")
FINAL = {b"success", b"failure", b"dead", b"cancelled"}
T = TypeVar("T")


class Protocol(RuleBasedStateMachine):
    """One queue, three workers, a model of what each worker knows."""

    server: RedisServer

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.admin = redis.Redis(port=self.server.port)
        self.admin.flushall()
        self.client = aioredis.Redis(port=self.server.port)
        self.queue = RedisQueue(self.client, Q)
        self.settings = Settings(queue=Q, crash_redelivery_limit=2, result_ttl=600)
        self.producer = Client(self.settings, redis=self.client, queue=Q)
        self.jobs: list[str] = []
        self.alive = set(WORKERS)
        # Per worker: claims it knows of (token -> job text), and calls it never heard back from.
        self.known: dict[str, dict[str, str]] = {w: {} for w in WORKERS}
        self.unanswered: dict[str, list[tuple[int, int]]] = {w: [] for w in WORKERS}
        self.calls = 0
        for worker in WORKERS:
            self.run(self.queue.register(worker, 600_000, {}))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.loop.close()
        self.admin.close()

    # -- producers ---------------------------------------------------------------------------

    @rule(delay=st.sampled_from([0, 0, 0.001]))
    def enqueue(self, delay: float) -> None:
        job_id = f"j{len(self.jobs)}"
        self.run(self.producer.enqueue("w", {"n": len(self.jobs)}, id=job_id, delay=delay))
        self.jobs.append(job_id)

    @rule()
    def enqueue_id_less(self) -> None:
        """A producer that writes the minimal form, twice the same bytes."""
        message = json.dumps({"workflow": "w", "payload": {"same": True}})
        self.admin.lpush(Q, message, message)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.run(self.producer.cancel(data.draw(st.sampled_from(self.jobs))))

    # -- workers -----------------------------------------------------------------------------

    @precondition(lambda self: self.alive)
    @rule(data=st.data(), count=st.integers(1, 3), lose_reply=st.booleans())
    def claim(self, data: st.DataObject, count: int, lose_reply: bool) -> None:
        worker = data.draw(st.sampled_from(sorted(self.alive)))
        self.calls += 1
        claimed = self.run(self.queue.claim(worker, count, self.calls, LIMIT))
        assert claimed is not None, "a live worker's claim was refused"
        if lose_reply:
            self.unanswered[worker].append((self.calls, count))
            return
        for item in claimed:
            self.known[worker][item.token] = item.raw.decode()

    @precondition(lambda self: any(self.unanswered[w] for w in self.alive))
    @rule(data=st.data())
    def claim_again(self, data: st.DataObject) -> None:
        """The worker sends a call whose reply it lost once more: it gets those jobs."""
        worker = data.draw(st.sampled_from(sorted(w for w in self.alive if self.unanswered[w])))
        call, count = self.unanswered[worker].pop(0)
        claimed = self.run(self.queue.claim(worker, count, call, LIMIT)) or []
        for item in claimed:
            assert reclaim.claim_call(item.token) == call
            self.known[worker][item.token] = item.raw.decode()

    @precondition(lambda self: any(self.known[w] for w in WORKERS))
    @rule(
        data=st.data(),
        kind=st.sampled_from(["done", "retry", "dead", "requeue", "defer"]),
        lose_reply=st.booleans(),
    )
    def acknowledge(self, data: st.DataObject, kind: str, lose_reply: bool) -> None:
        """A worker stores an outcome (a dead worker doing so is one that came back late)."""
        worker = data.draw(st.sampled_from(sorted(w for w in WORKERS if self.known[w])))
        token = data.draw(st.sampled_from(sorted(self.known[worker])))
        text = self.known[worker].pop(token)
        job_id = str(json.loads(text).get("id", ""))
        op = _op(kind, token, job_id, text)
        (held,) = self.run(self.queue.apply([op], 600, infer=True))
        if lose_reply:
            (again,) = self.run(self.queue.apply([op], 600, infer=True))
            if worker in self.alive:
                assert again == 1, "a live worker's resent acknowledgement was not recognised"
        if worker in self.alive:
            assert held == 1, "a live worker lost a claim nobody could take"

    @precondition(lambda self: len(self.alive) > 1)
    @rule(data=st.data())
    def die(self, data: st.DataObject) -> None:
        """A worker's lease lapses (killed, paused, partitioned)."""
        worker = data.draw(st.sampled_from(sorted(self.alive)))
        self.alive.discard(worker)
        self.admin.zadd(KEYS.workers, {worker: 1})
        self.unanswered[worker].clear()

    @precondition(lambda self: self.alive)
    @rule()
    def reap(self) -> None:
        self.run(reclaim.reap(self.queue, self.settings, full_scan=True))

    @precondition(lambda self: any(self.unanswered[w] for w in self.alive))
    @rule(data=st.data())
    def audit(self, data: st.DataObject) -> None:
        """A worker gives up on its unanswered calls and puts their claims back."""
        worker = data.draw(st.sampled_from(sorted(w for w in self.alive if self.unanswered[w])))
        self.unanswered[worker].clear()
        claims = self.run(self.queue.claims_of(worker, LIMIT))
        self.run(
            reclaim.put_back_stray(
                self.queue, self.settings, claims, set(self.known[worker]), self.calls + 1, set()
            )
        )

    @rule()
    def promote(self) -> None:
        self.run(self.queue.promote())

    # -- the invariant -----------------------------------------------------------------------

    @invariant()
    def every_job_is_in_exactly_one_place(self) -> None:
        places: dict[str, list[str]] = {}
        for raw in self.admin.lrange(Q, 0, -1):
            places.setdefault(_id(raw), []).append("queue")
        for text in self.admin.hvals(KEYS.processing):
            places.setdefault(_id(text), []).append("claimed")
        for member in self.admin.zrange(KEYS.delayed, 0, -1):
            assert isinstance(member, bytes)
            places.setdefault(_id(member), []).append("delayed")
        for entry in self.admin.lrange(KEYS.dead, 0, -1):
            places.setdefault(_id(str(json.loads(entry)["job"])), []).append("dead")
        for job_id, where in places.items():
            assert len(where) == 1 or job_id == "", f"{job_id} is in {where}"
        for job_id in self.jobs:
            if job_id not in places:
                state = self.admin.hget(KEYS.job(job_id), "state")
                assert state in FINAL, f"{job_id} is nowhere and its state is {state!r}"


def _id(raw: bytes | str) -> str:
    return str(json.loads(raw).get("id", ""))


def _op(kind: str, token: str, job_id: str, text: str) -> Op:
    if kind == "done":
        return Op("done", token, job_id, status={"state": "success"})
    if kind == "dead":
        entry = json.dumps({"reason": "model", "kind": "failed", "job": text})
        return Op("dead", token, job_id, entry, status={"state": "failure"})
    if kind == "requeue":
        return Op("requeue", token, job_id, text)
    job = json.loads(text)
    if kind == "retry":
        job["attempt"] = job.get("attempt", 1) + 1
    return Op(kind, token, job_id, json.dumps(job), 1, {"state": "retrying"})


def test_the_protocol_keeps_every_job_in_one_place(redis_server: RedisServer) -> None:
    """Hypothesis interleaves the whole protocol with lost replies and worker deaths; every job
    stays in exactly one place or finishes."""
    Protocol.server = redis_server
    machine = settings(
        max_examples=60,
        stateful_step_count=40,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )(Protocol)
    machine.TestCase().runTest()
