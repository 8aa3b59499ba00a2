"""Workflows for the fault harness and the soak run
(`WORKER_WORKFLOWS=bench.faults.flows:WORKFLOWS`).

`step` records every execution of a job in Redis (`faults:exec:<job id>`, one JSON event per
line: start, then end or cancel), stamped with the server's clock so that workers whose own
clocks are skewed still tell one story. The checker counts re-runs, completions that happened
twice and executions that overlapped, and attributes each one to the fault that caused it. A
record write that meets an outage is retried until it lands: the records must be complete for
the accounting to be exact.

`steps` is a workflow of durable steps (docs/steps.md): five steps, sync and async, around a
`ctx.sleep`. Each execution of a step function writes its start and end into
`faults:steps:<job id>` through a connection of its own straight to the primary (not through the
fault proxy, and following a failover), keyed by a run id unique to that execution, so a retried
write is not counted twice: the list is the truth of how often each step ran. A step returns
its value and its run id; the job's result is the values (a pure function of the seed, see
`step_values`) and the run id each recorded step came from.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from typing import Any

import redis
from redis.exceptions import RedisError

from workflow_worker.builtin import WORKFLOWS as BUILTIN
from workflow_worker.workflows.context import JobContext, WorkflowRegistry

__all__ = [
    "DIRECT_PORTS_ENV",
    "FANOUT_PREFIX",
    "GROUP_PREFIX",
    "RECORD_PREFIX",
    "STEPS_PREFIX",
    "STEP_NAMES",
    "STEP_PAUSE",
    "WORKFLOWS",
    "step_values",
]

RECORD_PREFIX = "faults:exec:"
GROUP_PREFIX = "faults:group:"
# What each run of a fan-out's callback was given (`gather`), one JSON summary per run.
FANOUT_PREFIX = "faults:fanout:"
RECORD_DEADLINE = 120.0
# Each step's executions (start, end, cancel, replay), one JSON event per line.
STEPS_PREFIX = "faults:steps:"
# The ports of the primary and its replica, for the step tally's direct connection.
DIRECT_PORTS_ENV = "FAULTS_DIRECT_PORTS"
# The `steps` workflow: five steps around a sleep (which goes through the delayed set).
STEP_NAMES = ("s1", "s2", "pause", "s3", "s4", "s5")
STEP_PAUSE = 1.5


async def _record(ctx: JobContext, event: dict[str, Any]) -> None:
    deadline = time.monotonic() + RECORD_DEADLINE
    while True:
        try:
            secs, micros = await ctx.redis.time()
            line = json.dumps({**event, "t": secs + micros / 1e6}, separators=(",", ":"))
            await ctx.redis.rpush(RECORD_PREFIX + ctx.job_id, line)
            return
        except (RedisError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def step(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Sleep `seconds` (holding the event loop for `block` seconds first, when given), fail on
    the first attempt when `fail_first`, and record start and end (or cancel).

    A cancellation can land while the end is being recorded (a drain deadline at that very
    moment): then "cancel" follows "end", and the run did not return (its end is not a
    completion; the job runs again elsewhere, as any interrupted job does).
    """
    base = {"run": uuid.uuid4().hex[:12], "pid": os.getpid(), "attempt": ctx.attempt}
    await _record(ctx, {**base, "ev": "start"})
    try:
        if payload.get("block"):
            # A blocking call in async code, as workflows contain by accident.
            time.sleep(float(payload["block"]))  # noqa: ASYNC251
        await asyncio.sleep(float(payload.get("seconds", 0.2)))
        if payload.get("fail_first") and ctx.attempt == 1:
            await _record(ctx, {**base, "ev": "fail"})
            raise RuntimeError("first attempt fails on purpose")
        await _record(ctx, {**base, "ev": "end"})
    except asyncio.CancelledError:
        # Drain deadline, cancel request or lost lease: say so, then let cancellation go on.
        await asyncio.shield(_record(ctx, {**base, "ev": "cancel"}))
        raise
    if payload.get("group"):
        # Messages without an id are counted by group: their ids were given by workers.
        await ctx.redis.sadd(GROUP_PREFIX + str(payload["group"]), ctx.job_id)
    return {"slept": payload.get("seconds", 0.2)}


async def churn(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Soak work: sleep, build and drop some data, touch Redis, sometimes fail (to retry)."""
    await asyncio.sleep(float(payload.get("seconds", 0.05)))
    blob = "x" * int(payload.get("bytes", 2048))
    await ctx.redis.set(f"faults:churn:{ctx.job_id}", blob, ex=30)
    if payload.get("fail"):
        raise RuntimeError("churn failed on purpose")
    return {"bytes": len(blob)}


async def gather(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """A fan-out's callback (docs/composition.md): record what it was given (how many
    outcomes, how many successes, whether they are in member order) and its run, like `step`."""
    base = {"run": uuid.uuid4().hex[:12], "pid": os.getpid(), "attempt": ctx.attempt}
    await _record(ctx, {**base, "ev": "start"})
    results = payload.get("results") or []
    summary = {
        "results": len(results),
        "success": sum(1 for r in results if r.get("state") == "success"),
        "ordered": [r.get("id") for r in results]
        == [f"{ctx.job_id}.{n}" for n in range(len(results))],
    }
    deadline = time.monotonic() + RECORD_DEADLINE
    while True:
        try:
            await ctx.redis.rpush(FANOUT_PREFIX + ctx.job_id, json.dumps(summary))
            break
        except (RedisError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    await _record(ctx, {**base, "ev": "end"})
    return summary


def step_values(seed: int) -> list[int]:
    """The values of the `steps` workflow's steps for `seed`, undisturbed."""
    out, value = [], seed
    for n, name in enumerate(STEP_NAMES):
        if name != "pause":
            value = _next_value(value, n)
            out.append(value)
    return out


def _next_value(previous: int, n: int) -> int:
    return (previous * 31 + n) % 1_000_000_007


class _Tally:
    """Writes of step executions straight to whichever server is the primary (a failover swaps
    them), retried until they land: Redis restarts, pauses and fills up during the run."""

    def __init__(self) -> None:
        ports = os.environ.get(DIRECT_PORTS_ENV, "")
        self._clients = [
            redis.Redis(port=int(p), socket_timeout=15, socket_connect_timeout=2)
            for p in ports.split(",")
            if p
        ]
        if not self._clients:
            raise RuntimeError(f"{DIRECT_PORTS_ENV} is not set: the steps flow runs in the harness")
        self._current = 0
        self._lock = threading.Lock()

    def write(self, job_id: str, event: dict[str, Any]) -> None:
        deadline = time.monotonic() + RECORD_DEADLINE
        while True:
            client = self._clients[self._current]
            try:
                secs, micros = client.time()
                line = json.dumps({**event, "t": secs + micros / 1e6}, separators=(",", ":"))
                client.rpush(STEPS_PREFIX + job_id, line)
                return
            except (RedisError, OSError):
                # A replica says READONLY, a restarting server refuses: try the other one.
                if time.monotonic() > deadline:
                    raise
                with self._lock:
                    self._current = (self._current + 1) % len(self._clients)
                time.sleep(0.05)


_tally: _Tally | None = None
_tally_lock = threading.Lock()


def _tally_write(job_id: str, event: dict[str, Any]) -> None:
    global _tally
    with _tally_lock:
        if _tally is None:
            _tally = _Tally()
    _tally.write(job_id, event)


def _sync_step(
    job_id: str, name: str, n: int, previous: int, seconds: float, ran: list[str]
) -> dict[str, Any]:
    """A plain step function (run in a thread by ctx.step): a thread cannot be cancelled, so
    it always ends, and its end is recorded even when the attempt no longer wants it."""
    run = uuid.uuid4().hex[:12]
    ran.append(run)
    base = {"step": name, "run": run, "pid": os.getpid()}
    _tally_write(job_id, {**base, "ev": "start"})
    time.sleep(seconds)
    _tally_write(job_id, {**base, "ev": "end"})
    return {"v": _next_value(previous, n), "run": run}


async def _async_step(
    job_id: str, name: str, n: int, previous: int, seconds: float, ran: list[str]
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:12]
    ran.append(run)
    base = {"step": name, "run": run, "pid": os.getpid()}
    await asyncio.to_thread(_tally_write, job_id, {**base, "ev": "start"})
    try:
        await asyncio.sleep(seconds)
        await asyncio.to_thread(_tally_write, job_id, {**base, "ev": "end"})
    except asyncio.CancelledError:
        await asyncio.shield(asyncio.to_thread(_tally_write, job_id, {**base, "ev": "cancel"}))
        raise
    return {"v": _next_value(previous, n), "run": run}


async def steps(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Five durable steps (async and sync by turns) around a `ctx.sleep`; returns the step
    values and the run id of each recorded step. A replayed step is noted as such."""
    seconds = float(payload.get("seconds", 0.2))
    value = int(payload["seed"])
    values: list[int] = []
    runs: list[str] = []
    for n, name in enumerate(STEP_NAMES):
        if name == "pause":
            await ctx.sleep(float(payload.get("pause", STEP_PAUSE)), name="pause")
            continue
        fn = _sync_step if n % 2 else _async_step
        # The step function notes its run in `ran`: empty after the call means replayed.
        ran: list[str] = []
        out = await ctx.step(name, fn, ctx.job_id, name, n, value, seconds, ran)
        value = int(out["v"])
        values.append(value)
        runs.append(str(out["run"]))
        if not ran:
            event = {"step": name, "run": out["run"], "pid": os.getpid(), "ev": "replay"}
            await asyncio.to_thread(_tally_write, ctx.job_id, event)
    return {"values": values, "runs": runs}


WORKFLOWS: WorkflowRegistry = {
    **BUILTIN,
    "step": step,
    "limited": step,
    "churn": churn,
    "gather": gather,
    "steps": steps,
}
