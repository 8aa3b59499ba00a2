"""`Consumer`: claim jobs only into free slots, run each as an asyncio task, record the outcome.

A slot is held from claim until the job's final state is stored in Redis, so the processing hash
never holds more than `concurrency` jobs of this worker, and the queue list holds exactly the jobs
that wait (what KEDA scales on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from redis.exceptions import RedisError

from worker.batcher import Batcher
from worker.context import JobContext, WorkflowRegistry
from worker.job import InvalidJob, Job, State, decode_job
from worker.metrics import Metrics
from worker.outcome import Outcome, failed, invalid, succeeded
from worker.queue import Claimed, Op, RedisQueue, unix_now
from worker.settings import Settings

__all__ = ["Consumer"]

log = logging.getLogger("worker.jobs")
WAIT_TIMEOUT = 2.0
UNKNOWN = "_unknown"


class JobTimeout(TimeoutError):
    """An attempt ran past its timeout and was cancelled."""


@dataclass(slots=True)
class Running:
    """A claimed job this process is handling."""

    token: str
    task: asyncio.Task[None] | None = None
    job: Job | None = None
    in_workflow: bool = False
    stop_reason: str | None = None
    started: float = field(default_factory=time.monotonic)

    def interrupt(self, reason: str) -> None:
        """Cancel the workflow (never the bookkeeping around it) and remember why."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.in_workflow and self.task is not None:
            self.task.cancel()


class Consumer:
    """The claim loop and the per-job tasks of one worker process."""

    def __init__(
        self,
        settings: Settings,
        queue: RedisQueue,
        batcher: Batcher,
        metrics: Metrics,
        registry: WorkflowRegistry,
        http: aiohttp.ClientSession,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.batcher = batcher
        self.metrics = metrics
        self.registry = registry
        self.http = http
        self.worker_id = ""
        self.running: dict[str, Running] = {}
        self._seq = 0
        self._slot_freed = asyncio.Event()
        self._stop = asyncio.Event()
        self.lease_lost = asyncio.Event()
        self.claiming = False

    @property
    def capacity(self) -> int:
        return self.settings.concurrency

    # -- claiming ---------------------------------------------------------------------------

    async def claim_loop(self) -> None:
        """Claim as many jobs as there are free slots; block on the list when it is empty."""
        delay = 0.05
        self.claiming = True
        try:
            while not self._stop.is_set():
                free = self.capacity - len(self.running)
                if free <= 0:
                    self._slot_freed.clear()
                    await self._until(self._slot_freed.wait())
                    continue
                try:
                    claimed = await self.queue.claim(self.worker_id, free, self._seq)
                    if claimed == []:
                        await self._until(self.queue.wait_for_jobs(WAIT_TIMEOUT))
                except (RedisError, OSError) as exc:
                    self.metrics.redis_error("claim")
                    log.warning("claim failed, retrying in %.2fs: %s", delay, exc)
                    await self._until(asyncio.sleep(delay * (1 + random.random())))
                    delay = min(delay * 2, 5.0)
                    continue
                delay = 0.05
                if claimed is None:
                    self.lease_lost.set()
                    await self._until(asyncio.sleep(0.1))
                    continue
                self.metrics.redis_connected.labels(self.queue.keys.queue).set(1)
                self._seq += len(claimed)
                for item in claimed:
                    self._start(item)
        finally:
            self.claiming = False

    async def _until(self, aw: Awaitable[Any]) -> None:
        """Await `aw` unless the stop event fires first (then `aw` is cancelled)."""
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (task, stop):
                if not fut.done():
                    fut.cancel()
                    with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                        await fut
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    def stop_claiming(self) -> None:
        self._stop.set()

    def _start(self, item: Claimed) -> None:
        running = self.running[item.token] = Running(item.token)
        running.task = asyncio.create_task(self._process(item, running))
        self.metrics.set_active(len(self.running))

    # -- running one job --------------------------------------------------------------------

    async def _process(self, item: Claimed, running: Running) -> None:
        try:
            outcome = await self._attempt(item, running)
            if outcome is not None:
                await self._record(outcome, running)
        except Exception:
            # A bug in bookkeeping must not leak the slot; the job stays claimed and a later
            # reap (after this worker exits) re-delivers it.
            log.exception("internal error while handling a job", extra={"token": item.token})
        finally:
            self.running.pop(item.token, None)
            self.metrics.set_active(len(self.running))
            self._slot_freed.set()

    def _lookup(self, job: Job) -> Callable[..., Awaitable[Any]] | None:
        if self.settings.benchmark_mode:
            return self._benchmark
        return self.registry.get(job.workflow)

    async def _benchmark(self, payload: dict[str, Any], ctx: JobContext) -> dict[str, float]:
        lo, hi = self.settings.benchmark_min_seconds, self.settings.benchmark_max_seconds
        seconds = random.uniform(lo, hi)
        await asyncio.sleep(seconds)
        return {"slept": round(seconds, 3)}

    async def _attempt(self, item: Claimed, running: Running) -> Outcome | None:
        try:
            job = decode_job(item.raw, max_bytes=self.settings.max_payload_bytes)
        except InvalidJob as exc:
            return invalid(item.token, item.raw, str(exc))
        func = self._lookup(job)
        if func is None:
            reason = f"unknown workflow {job.workflow!r}"
            return invalid(item.token, item.raw, reason, job.id)
        running.job = job
        if running.stop_reason is not None:
            return self._interrupted(running, job)
        held = await self._mark_started(item, job)
        if held == 0:
            return None
        if held == 2:
            running.stop_reason = "cancelled"
            return self._interrupted(running, job)
        started = time.monotonic()
        outcome = await self._call(func, job, running)
        duration = time.monotonic() - started
        self.metrics.observe_duration(job.workflow, duration)
        if outcome is None:
            return self._interrupted(running, job)
        if isinstance(outcome, BaseException):
            return failed(running.token, job, outcome, duration, self.settings)
        return succeeded(running.token, job, outcome[0], duration)

    async def _call(
        self, func: Callable[..., Awaitable[Any]], job: Job, running: Running
    ) -> tuple[Any] | BaseException | None:
        """Run the workflow: (result,), the exception it raised, or None if we interrupted it."""
        timeout = job.timeout or self.settings.job_timeout
        running.in_workflow = True
        try:
            async with asyncio.timeout(timeout) as scope:
                return (await func(job.payload, self._context(job)),)
        except asyncio.CancelledError:
            if running.stop_reason is None or running.task is None:
                raise
            # Our own interrupt (drain deadline, cancel request, lost lease), not a task cancel:
            # undo it so the bookkeeping that follows runs normally.
            running.task.uncancel()
            return None
        except TimeoutError as exc:
            if scope.expired():
                return JobTimeout(f"timed out after {timeout:g}s")
            return exc
        except Exception as exc:
            return exc
        finally:
            running.in_workflow = False

    def _interrupted(self, running: Running, job: Job) -> Outcome | None:
        reason = running.stop_reason or "cancelled"
        if reason == "shutdown":
            status = {"state": State.QUEUED.value, "requeued_at": unix_now()}
            return Outcome(Op("requeue", running.token, job.id, job.encode(), 0, status), "")
        if reason == "lease_lost":
            return None
        status = {"state": State.CANCELLED.value, "finished_at": unix_now()}
        return Outcome(Op("done", running.token, job.id, status=status), "cancelled")

    async def _mark_started(self, item: Claimed, job: Job) -> int:
        """Record the start: 1 to run, 0 if the claim is gone, 2 if a cancel request stands.

        A job without a producer-given id cannot be looked up or cancelled by its producer, so
        it starts at once with no "running" record (its final record is still written).
        """
        held = 1
        if not job.generated_id:
            status = {
                "state": State.RUNNING.value,
                "workflow": job.workflow,
                "attempt": str(job.attempt),
                "max_attempts": str(job.max_attempts or self.settings.max_attempts),
                "queue": self.queue.keys.queue,
                "worker": self.worker_id,
                "started_at": unix_now(),
            }
            start = Op("start", item.token, job.id, status=status, cancellable=True)
            held = await self.batcher.submit(start)
            if held != 1:
                return held
        if job.enqueued_at is not None:
            self.metrics.observe_wait(job.workflow, max(0.0, time.time() - job.enqueued_at))
        log.info(
            "job started",
            extra={"job_id": job.id, "workflow": job.workflow, "attempt": job.attempt},
        )
        return held

    def _context(self, job: Job) -> JobContext:
        extra = {"job_id": job.id, "workflow": job.workflow, "attempt": job.attempt}
        return JobContext(
            job_id=job.id,
            workflow=job.workflow,
            attempt=job.attempt,
            max_attempts=job.max_attempts or self.settings.max_attempts,
            queue=self.queue.keys.queue,
            logger=logging.LoggerAdapter(logging.getLogger("worker.workflow"), extra),
            http=self.http,
            redis=self.queue.client,
        )

    async def _record(self, outcome: Outcome, running: Running) -> None:
        job = running.job
        if job is not None:
            outcome.op.unique_key = str(job.extra.get("unique_key") or "")
            outcome.op.cancellable = not job.generated_id
        held = await self.batcher.submit(outcome.op)
        known = job is not None and (self.settings.benchmark_mode or job.workflow in self.registry)
        workflow = job.workflow if job is not None and known else UNKNOWN
        q = self.queue.keys.queue
        if not held:
            self.metrics.duplicates.labels(q).inc()
            log.warning(
                "job finished after its claim was taken back: it also ran elsewhere",
                extra={"job_id": outcome.op.job_id, "token": running.token},
            )
        elif outcome.status:
            self.metrics.outcome(workflow, outcome.status)
        else:
            self.metrics.requeued.labels(q, "shutdown").inc()
        log.info(
            "job finished",
            extra={
                "job_id": outcome.op.job_id or None,
                "workflow": job.workflow if job else None,
                "attempt": job.attempt if job else None,
                "outcome": outcome.status or "requeued",
                "duration_s": round(time.monotonic() - running.started, 6),
                "error": outcome.error or None,
            },
        )

    # -- stopping ---------------------------------------------------------------------------

    def cancellable_ids(self) -> dict[str, Running]:
        """Running jobs a producer can cancel (those with an id of their own), by job id."""
        return {
            r.job.id: r
            for r in self.running.values()
            if r.job is not None and not r.job.generated_id and r.in_workflow
        }

    def interrupt_all(self, reason: str) -> None:
        for running in list(self.running.values()):
            running.interrupt(reason)

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no job runs; False if `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            tasks = [r.task for r in self.running.values() if r.task is not None]
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0.0:
                return False
            await asyncio.wait(tasks, timeout=left)
        return True
