"""Durable steps: `await ctx.step(name, fn, *args)` and `await ctx.sleep(seconds)`.

A step's result is recorded in Redis (engine/stepstore.py) before the workflow goes on, so an
attempt that starts again after a crash, a lost lease, a drain or a retry returns recorded
results instead of running their steps again. Steps are identified by name plus occurrence
(`fetch#1`, `fetch#2`, ...), so the same name in a loop is fine; without a name, the function's
qualified name is the name. Guide: docs/steps.md.

Jobs that never call `ctx.step` pay nothing here: the per-job log is created at the first call,
and the recorded steps are read in one call at that moment, not at claim.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from workflow_worker.engine import threads
from workflow_worker.engine.batcher import transient
from workflow_worker.engine.job import with_id
from workflow_worker.engine.queue import Op
from workflow_worker.engine.stepstore import StepStore
from workflow_worker.ops.metrics import Metrics
from workflow_worker.settings import Settings

if TYPE_CHECKING:
    from workflow_worker.engine.execution import Running
    from workflow_worker.engine.queue import Claimed

__all__ = [
    "CHECKPOINT",
    "MAX_STEPS",
    "SLEEP",
    "DrainTally",
    "StepError",
    "StepLimitError",
    "StepNotRecorded",
    "StepResultError",
    "Steps",
]

# Stop reasons (Running.stop_reason) of an attempt ended by a step boundary.
CHECKPOINT = "checkpoint"  # a drain began: requeued at once, not counted as an attempt
SLEEP = "sleep"  # ctx.sleep: back to the delayed set until the wake-up time
LEASE_LOST = "lease_lost"  # a step could not be recorded: the claim was taken back
MAX_STEPS = 1000
# A sleep this short waits in place: a round trip through the delayed set costs more.
SLEEP_IN_PLACE = 1.0
# Bounded retries of a step read or record while Redis is unreachable (about 3 s in all).
RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.6)
# A step running longer than this is named in the job's record as `step`.
SHOW_STEP_AFTER = 0.5
_strict = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


class StepError(RuntimeError):
    """A durable step could not be used as asked."""


class StepResultError(StepError):
    """A step returned something that cannot be recorded (not JSON, or too large)."""


class StepLimitError(StepError):
    """A job called more steps than one job may record."""


class StepNotRecorded(StepError):
    """Redis could not be reached to read or record a step: the workflow does not go on."""


@dataclass(slots=True)
class StepLog:
    """One attempt's steps: what is recorded, and how often each name was called."""

    recorded: dict[bytes, bytes] | None = None
    loading: asyncio.Future[tuple[dict[bytes, bytes], float]] | None = None
    seen: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    cut_mid_step: bool = False  # a step was cancelled while it ran (it will run again)
    id_written: bool = False
    wake_in: float = 0.0
    # The server's clock minus this worker's, measured when the steps were read: sleeps keep
    # their wake-up time on the server's clock, which every worker shares.
    offset: float = 0.0


@dataclass(slots=True)
class DrainTally:
    """How the jobs running during a drain left: finished, checkpointed at a step boundary
    (or went to sleep), or requeued at the deadline (mid-step when inside a step)."""

    started: float = field(default_factory=time.monotonic)
    finished: int = 0
    checkpointed: int = 0
    requeued: int = 0
    requeued_mid_step: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "finished": self.finished,
            "checkpointed": self.checkpointed,
            "requeued": self.requeued,
            "requeued_mid_step": self.requeued_mid_step,
            "drain_s": round(time.monotonic() - self.started, 3),
        }


class Steps:
    """The step machinery of one worker, shared by its jobs."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        # Set when a drain begins: jobs using steps stop at their next step boundary.
        self.drain: DrainTally | None = None
        self._stores: dict[int, StepStore] = {}

    # -- the workflow-facing calls ------------------------------------------------------------

    async def step(
        self, running: Running, first: Any, rest: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """`ctx.step(name, fn, *args, **kwargs)` or `ctx.step(fn, *args, **kwargs)`."""
        if isinstance(first, str):
            if not rest or not callable(rest[0]):
                raise TypeError(
                    f"ctx.step({first!r}, fn, ...): the second argument must be callable"
                )
            name, fn, args = first, rest[0], rest[1:]
        elif callable(first):
            name, fn, args = _auto_name(first), first, rest
        else:
            raise TypeError("ctx.step(name, fn, *args) or ctx.step(fn, *args)")
        log, key = self._next_key(running, name)
        recorded = await self._recorded(running, log)
        raw = recorded.get(key.encode("utf-8"))
        if raw is not None:
            self._count(running, "replayed")
            return json.loads(raw)
        await self._boundary(running)
        shown = _show_running_step(running, key)
        try:
            value = await _run(fn, args, kwargs)
        except asyncio.CancelledError:
            # Counted by the drain (requeued mid-step) once the attempt's outcome is stored.
            log.cut_mid_step = True
            raise
        finally:
            if shown is not None:
                shown.cancel()
        text = self._encode(key, value)
        await self._record(running, log, key, text, 0)
        recorded[key.encode("utf-8")] = text.encode("utf-8")
        self._count(running, "ran")
        await self._boundary(running)
        # What a resumed attempt would get, so both paths return the same thing.
        return json.loads(text)

    async def sleep(self, running: Running, seconds: float, name: str) -> None:
        """`ctx.sleep(seconds)`: a recorded wake-up time; the attempt ends and the job waits in
        the delayed set (holding no slot), then resumes after its recorded steps."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"ctx.sleep: seconds must be a number, got {seconds!r:.80}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"ctx.sleep: seconds must be finite and >= 0, got {seconds!r}")
        log, key = self._next_key(running, name)
        recorded = await self._recorded(running, log)
        raw = recorded.get(key.encode("utf-8"))
        if raw is None:
            await self._boundary(running)
            until = time.time() + log.offset + seconds
            text = _strict({"until": round(until, 3)})
            await self._record(running, log, key, text, math.ceil(seconds))
            recorded[key.encode("utf-8")] = text.encode("utf-8")
            self._count(running, "ran")
        else:
            until = float(json.loads(raw)["until"])
            self._count(running, "replayed")
        wait = until - (time.time() + log.offset)
        if wait <= 0:
            return
        if wait <= SLEEP_IN_PLACE:
            await asyncio.sleep(wait)
            return
        log.wake_in = wait
        await _stop(running, SLEEP)

    # -- the executor-facing calls --------------------------------------------------------------

    def begin_drain(self) -> DrainTally:
        """A drain begins: from now on, jobs using steps stop at their next step boundary."""
        if self.drain is None:
            self.drain = DrainTally()
        return self.drain

    def ended(self, running: Running, status: str, queue: str) -> None:
        """Tally one job that ended during a drain (`status` is its outcome's word)."""
        tally = self.drain
        if tally is None:
            return
        log: StepLog | None = running.steps
        if running.stop_reason in (CHECKPOINT, SLEEP):
            tally.checkpointed += 1
            outcome = "checkpointed"
        elif status:
            tally.finished += 1
            outcome = "finished"
        elif log is not None and log.cut_mid_step:
            tally.requeued_mid_step += 1
            outcome = "requeued_mid_step"
        else:
            tally.requeued += 1
            outcome = "requeued"
        self.metrics.drained(queue, outcome)

    async def close(self) -> None:
        """Close the step writes' connections (at the worker's exit)."""
        for store in self._stores.values():
            await store.close()

    @staticmethod
    def wake_in(running: Running) -> float:
        """Seconds until a job that went to sleep wakes."""
        log: StepLog | None = running.steps
        return log.wake_in if log is not None else 0.0

    # -- internals -------------------------------------------------------------------------

    def _next_key(self, running: Running, name: str) -> tuple[StepLog, str]:
        log: StepLog | None = running.steps
        if log is None:
            log = running.steps = StepLog()
        log.calls += 1
        if log.calls > MAX_STEPS:
            raise StepLimitError(
                f"step {name!r} is call {log.calls} of ctx.step/ctx.sleep in one job, over the "
                f"limit of {MAX_STEPS}: split the work into child jobs"
            )
        # Numbered at the call, before any await, so steps gathered concurrently keep the
        # order they were called in.
        occurrence = log.seen[name] = log.seen.get(name, 0) + 1
        return log, f"{name}#{occurrence}"

    async def _recorded(self, running: Running, log: StepLog) -> dict[bytes, bytes]:
        """The job's recorded steps, read once per attempt (at its first step call)."""
        if log.recorded is not None:
            return log.recorded
        if log.loading is None:
            job = _job(running)
            store, keys = self._store(running), running.lane.queue.keys
            log.loading = asyncio.ensure_future(
                _retrying(lambda: store.load_timed(keys, job.id), "read the recorded steps")
            )
        found, server_now = await log.loading
        if log.recorded is None:
            log.recorded, log.offset = found, server_now - time.time()
        return log.recorded

    async def _record(
        self, running: Running, log: StepLog, key: str, text: str, extra_s: int
    ) -> None:
        job = _job(running)
        store, keys = self._store(running), running.lane.queue.keys
        # The steps must outlive the status record: result TTL + the job's timeout (+ a sleep).
        timeout = job.timeout or self.settings.job_timeout
        life = self.settings.result_ttl + math.ceil(timeout) + extra_s
        claimed = ""
        if job.generated_id and not log.id_written:
            claimed = with_id(_raw(running), job.id)
        held = await _retrying(
            lambda: store.record(
                keys,
                running.token,
                job.id,
                key,
                text,
                life_s=life,
                progress=not job.generated_id,
                claimed_text=claimed,
            ),
            f"record step {key!r}",
        )
        if not held:
            await _stop(running, LEASE_LOST)
        log.id_written = True

    async def _boundary(self, running: Running) -> None:
        """A step boundary: during a drain, stop here and be requeued at once."""
        if self.drain is not None:
            await _stop(running, CHECKPOINT)

    def _encode(self, key: str, value: Any) -> str:
        try:
            text = _strict(value)
        except (TypeError, ValueError) as exc:
            raise StepResultError(
                f"step {key!r} returned a result that is not JSON ({exc}); return dicts, lists, "
                "strings, numbers, booleans or None"
            ) from None
        limit = self.settings.max_result_bytes
        size = len(text.encode("utf-8"))
        if size > limit:
            raise StepResultError(
                f"step {key!r} returned {size} bytes of JSON, over the {limit}-byte limit "
                "(WORKER_MAX_RESULT_BYTES); store large data elsewhere and return a reference"
            )
        return text

    def _store(self, running: Running) -> StepStore:
        client = running.lane.queue.client
        store = self._stores.get(id(client))
        if store is None:
            store = self._stores[id(client)] = StepStore(client)
        return store

    def _count(self, running: Running, kind: str) -> None:
        self.metrics.step(running.lane.name, _job(running).workflow, kind)


def _show_running_step(running: Running, key: str) -> asyncio.TimerHandle | None:
    """Name the step in the job's record (`step`) once it has run for SHOW_STEP_AFTER: a
    write through the batcher that nobody waits for, so short steps cost nothing extra and a
    long one (an LLM call) one write. The record call of the step removes the name again."""
    job = running.job
    if job is None or job.generated_id:
        return None  # no status record while it runs
    op = Op("progress", running.token, job.id, status={"step": key})
    return asyncio.get_running_loop().call_later(SHOW_STEP_AFTER, _post_if_running, running, op)


def _post_if_running(running: Running, op: Op) -> None:
    if running.in_workflow:
        running.lane.batcher.post(op)


def _job(running: Running) -> Any:
    job = running.job
    if job is None:  # pragma: no cover - a context exists only once the job is decoded
        raise StepError("no job")
    return job


def _raw(running: Running) -> bytes:
    item: Claimed | None = running.claimed
    if item is None:  # pragma: no cover - set with the job
        raise StepError("no claimed message")
    return item.raw


def _auto_name(fn: Callable[..., Any]) -> str:
    """A step's name when none is given: the function's qualified name."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return str(name)


async def _run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    ):
        return await fn(*args, **kwargs)
    value = await _in_thread(fn, args, kwargs)
    if inspect.isawaitable(value):
        value = await value
    return value


async def _in_thread(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run a sync step function off the event loop, in the worker's pool for sync code
    (WORKER_SYNC_THREADS), so steps and sync workflows share one bound on threads."""
    return await threads.call(fn, *args, **kwargs)


async def _retrying(call: Callable[[], Any], what: str) -> Any:
    """`call()` with a few retries while Redis is unreachable or refuses for a while (loading
    its data after a restart, read-only during a failover, full: the refusals the batcher
    also waits out); StepNotRecorded after that. Other errors are the call's own: raised."""
    for delay in (*RETRY_DELAYS, None):
        try:
            return await call()
        except (RedisError, OSError) as exc:
            if not transient(exc):
                raise
            if delay is None:
                raise StepNotRecorded(f"could not {what}: {type(exc).__name__}: {exc}") from exc
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


async def _stop(running: Running, reason: str) -> None:
    """End the attempt here for `reason`; the executor turns it into the outcome."""
    running.interrupt(reason)
    # The cancel just requested is delivered at this await, the way every interrupt arrives.
    await asyncio.sleep(0)
    raise asyncio.CancelledError  # pragma: no cover - only if the workflow swallowed it
