"""One claimed job, start to end: decode, rate limit, start record, run, outcome, record.

The job's task ends once its outcome is handed to the batcher; what follows the store (metrics,
the log line, freeing the slot) runs as the batcher's continuation when the reply arrives. A
lone finished job then costs the event loop two wake-ups, its own and the reply's, not three.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from redis.exceptions import RedisError

from workflow_worker.engine.job import InvalidJob, Job, State, decode_job, with_id
from workflow_worker.engine.lane import Lane
from workflow_worker.engine.outcome import Outcome, failed, invalid, oversized, succeeded
from workflow_worker.engine.queue import Claimed, Op, unix_now
from workflow_worker.engine.ratelimit import RateLimiter
from workflow_worker.ops.metrics import Metrics
from workflow_worker.settings import Settings
from workflow_worker.workflows.context import JobContext, WorkflowRegistry
from workflow_worker.workflows.steps import CHECKPOINT, SLEEP, Steps

__all__ = ["Executor", "Running"]

log = logging.getLogger("workflow_worker.jobs")
UNKNOWN = "_unknown"
# The stop reason of an attempt that ran past its timeout.
TIMED_OUT = "timeout"


class JobTimeout(TimeoutError):
    """An attempt ran past its timeout and was cancelled."""


@dataclass(slots=True)
class Running:
    """A claimed job this process is handling, until its outcome is stored (`end`)."""

    token: str
    lane: Lane
    on_end: Callable[[Running], None]
    task: asyncio.Task[None] | None = None
    job: Job | None = None
    in_workflow: bool = False
    admitted: bool = False
    stop_reason: str | None = None
    started: float = field(default_factory=time.monotonic)
    # Durable steps (workflows/steps.py): the claimed message, the worker's step machinery,
    # and the step log once the workflow calls ctx.step (None for jobs that use no steps).
    claimed: Claimed | None = None
    engine: Steps | None = None
    steps: Any = None

    def interrupt(self, reason: str) -> None:
        """Cancel the workflow (never the bookkeeping around it) and remember why; the first
        reason wins."""
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        if self.in_workflow and self.task is not None:
            self.task.cancel()

    def end(self) -> None:
        """Give the slot back: the outcome is stored, or there is none to store."""
        self.on_end(self)


class Executor:
    """Runs claimed jobs; shared by every lane of one worker."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        registry: WorkflowRegistry,
        http: aiohttp.ClientSession,
        worker_id: Callable[[], str],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.registry = registry
        self.http = http
        self.worker_id = worker_id
        # Called when this worker puts a job in a delayed set (retry, rate limit), so the
        # promoter wakes for it instead of waiting for its fallback timer.
        self.on_due: Callable[[], None] = lambda: None
        # Limit releases in flight (a task needs a reference until it ends).
        self._releasing: set[asyncio.Task[None]] = set()
        self.steps = Steps(settings, metrics)

    async def run(self, item: Claimed, running: Running) -> None:
        """Handle one job up to handing its outcome to the batcher; `running.end()` follows
        once the outcome is stored (at once when there is none: the claim was lost)."""
        try:
            outcome = await self._attempt(item, running)
            if outcome is not None:
                job = running.job
                if job is not None:
                    # Final ops release the lock; retries and deferrals keep it alive longer.
                    outcome.op.unique_key = str(job.extra.get("unique_key") or "")
                    outcome.op.cancellable = not job.generated_id
                continuation = functools.partial(self._stored, outcome, running)
                running.lane.batcher.store(outcome.op, continuation)
                return
        except BaseException:
            # A bug in bookkeeping must not leak the slot (nor the limit): the job stays
            # claimed and a later reap (after this worker exits) re-delivers it.
            self._finish(running)
            raise
        self._finish(running)

    def _finish(self, running: Running) -> None:
        """Release the job's fleet-wide limit, if it holds one, then its slot."""
        job, limiter = running.job, running.lane.limiter
        if running.admitted and job is not None and limiter is not None:
            running.admitted = False
            task = asyncio.create_task(self._release(limiter, job.workflow, running))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)
            return
        running.end()

    @staticmethod
    async def _release(limiter: RateLimiter, workflow: str, running: Running) -> None:
        try:
            # A lost release heals itself: the limiter purges holders whose claim is gone.
            with contextlib.suppress(RedisError, OSError):
                await limiter.release(workflow, running.token)
        finally:
            running.end()

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
        if not item.whole:
            return oversized(item, self.settings.claim_limit)
        try:
            job = decode_job(item.raw, max_bytes=self.settings.claim_limit)
        except InvalidJob as exc:
            return invalid(item.token, item.raw, str(exc))
        func = self._lookup(job)
        if func is None:
            return invalid(item.token, item.raw, f"unknown workflow {job.workflow!r}")
        running.job = job
        running.claimed = item
        running.engine = self.steps
        if running.stop_reason is not None:
            return self._interrupted(running, item, job)
        wait = await self._admit(item, job, running)
        if wait > 0:
            return self._deferred(item, job, wait)
        held = await self._mark_started(item, job, running.lane)
        if held != 1:
            running.stop_reason = "cancelled" if held == 2 else "lease_lost"
            return self._interrupted(running, item, job)
        started = time.monotonic()
        outcome = await self._call(func, job, running)
        duration = time.monotonic() - started
        self.metrics.observe_duration(running.lane.name, job.workflow, duration)
        if outcome is None:
            return self._interrupted(running, item, job)
        if isinstance(outcome, BaseException):
            return failed(running.token, job, outcome, duration, self.settings)
        return succeeded(running.token, job, outcome[0], duration, self.settings)

    async def _admit(self, item: Claimed, job: Job, running: Running) -> float:
        """0 when the job may start now; else seconds to wait for its fleet-wide limit."""
        limiter = running.lane.limiter
        if limiter is None or job.workflow not in limiter.limits:
            return 0.0
        # The slot is held for at most the job's run time plus two leases (the time a dead
        # holder's claim takes to be reaped), after which the limiter purges it.
        hold = (job.timeout or self.settings.job_timeout) + 2 * self.settings.lease_seconds + 30
        wait = await limiter.acquire(job.workflow, item.token, hold)
        running.admitted = wait <= 0
        return wait

    def _deferred(self, item: Claimed, job: Job, wait: float, word: str = "deferred") -> Outcome:
        """Back to the delayed set, unchanged: waiting for a limit is not an attempt."""
        status: dict[str, str] = {}
        job_id = ""
        if not job.generated_id:
            job_id = job.id
            status = {"state": State.DELAYED.value}
        op = Op(
            "defer",
            item.token,
            job_id,
            self._as_claimed(item, job),
            max(1, round(wait * 1000)),
            status,
            extra_s=math.ceil(wait),
        )
        return Outcome(op, word)

    @staticmethod
    def _as_claimed(item: Claimed, job: Job) -> str:
        """The message as its producer wrote it, with the id it was given here if it had none:
        a job put back keeps one identity, and two identical messages stay two jobs."""
        if job.generated_id:
            return with_id(item.raw, job.id)
        return item.raw.decode("utf-8")

    async def _call(
        self, func: Callable[..., Awaitable[Any]], job: Job, running: Running
    ) -> tuple[Any] | BaseException | None:
        """Run the workflow: (result,), the exception it raised, or None if we interrupted it."""
        if running.stop_reason is not None:
            return None  # interrupted while its start was being recorded
        timeout = job.timeout or self.settings.job_timeout
        # The timeout is an interrupt like the others: one timer handle per job, where
        # asyncio.timeout() would add a context manager's worth of Python around it.
        loop = asyncio.get_running_loop()
        expiry = loop.call_at(loop.time() + timeout, running.interrupt, TIMED_OUT)
        running.in_workflow = True
        try:
            return (await func(job.payload, self._context(job, running)),)
        except asyncio.CancelledError:
            if running.stop_reason is None or running.task is None:
                raise
            # Our own interrupt (timeout, drain deadline, cancel request, lost lease), not a
            # task cancel: undo it so the bookkeeping that follows runs normally.
            running.task.uncancel()
            if running.stop_reason == TIMED_OUT:
                return JobTimeout(f"timed out after {timeout:g}s")
            return None
        except Exception as exc:
            return exc
        finally:
            expiry.cancel()
            running.in_workflow = False

    def _interrupted(self, running: Running, item: Claimed, job: Job) -> Outcome | None:
        reason = running.stop_reason or "cancelled"
        if reason == SLEEP:
            # ctx.sleep: back to the delayed set, not counted as an attempt.
            return self._deferred(item, job, self.steps.wake_in(running), "sleeping")
        if reason in ("shutdown", CHECKPOINT):
            status = {"state": State.QUEUED.value, "requeued_at": unix_now()}
            text = self._as_claimed(item, job)
            return Outcome(Op("requeue", running.token, job.id, text, 0, status), "")
        if reason == "lease_lost":
            return None
        status = {"state": State.CANCELLED.value, "finished_at": unix_now()}
        return Outcome(Op("done", running.token, job.id, status=status), "cancelled")

    async def _mark_started(self, item: Claimed, job: Job, lane: Lane) -> int:
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
                "queue": lane.name,
                "worker": self.worker_id(),
                "started_at": unix_now(),
            }
            start = Op(
                "start",
                item.token,
                job.id,
                status=status,
                unique_key=str(job.extra.get("unique_key") or ""),
                cancellable=True,
                extra_s=math.ceil(job.timeout or self.settings.job_timeout),
            )
            held = await lane.batcher.submit(start)
            if held != 1:
                return held
        if job.enqueued_at is not None:
            waited = max(0.0, time.time() - job.enqueued_at)
            self.metrics.observe_wait(lane.name, job.workflow, waited)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "job started",
                extra={"job_id": job.id, "workflow": job.workflow, "attempt": job.attempt},
            )
        return held

    def _context(self, job: Job, running: Running) -> JobContext:
        lane = running.lane
        extra = {"job_id": job.id, "workflow": job.workflow, "attempt": job.attempt}
        return JobContext(
            job_id=job.id,
            workflow=job.workflow,
            attempt=job.attempt,
            max_attempts=job.max_attempts or self.settings.max_attempts,
            queue=lane.name,
            logger=logging.LoggerAdapter(logging.getLogger("workflow_worker.workflow"), extra),
            http=self.http,
            redis=lane.queue.client,
            _running=running,
        )

    def _stored(self, outcome: Outcome, running: Running, held: int) -> None:
        """The batcher's continuation once the outcome is applied: count, log, free the slot."""
        try:
            self._count(outcome, running, held)
        finally:
            self._finish(running)

    def _count(self, outcome: Outcome, running: Running, held: int) -> None:
        job, lane = running.job, running.lane
        if self.steps.drain is not None:
            self.steps.ended(running, outcome.status, lane.name)
        if held and outcome.op.kind in ("retry", "defer"):
            self.on_due()
        known = job is not None and (self.settings.benchmark_mode or job.workflow in self.registry)
        workflow = job.workflow if job is not None and known else UNKNOWN
        if not held:
            self.metrics.duplicates.labels(lane.name).inc()
            log.warning(
                "job finished after its claim was taken back: it also ran elsewhere",
                extra={"job_id": outcome.op.job_id, "token": running.token},
            )
        elif outcome.status == "deferred":
            self.metrics.rate_limited.labels(lane.name, workflow).inc()
            return
        elif outcome.status:
            self.metrics.outcome(lane.name, workflow, outcome.status)
        else:
            reason = CHECKPOINT if running.stop_reason == CHECKPOINT else "shutdown"
            self.metrics.requeued.labels(lane.name, reason).inc()
        self._log_end(outcome, running)

    def _log_end(self, outcome: Outcome, running: Running) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        job = running.job
        log.info(
            "job finished",
            extra={
                "job_id": outcome.op.job_id or (job.id if job else None),
                "workflow": job.workflow if job else None,
                "attempt": job.attempt if job else None,
                "queue": running.lane.name,
                "outcome": outcome.status or "requeued",
                "duration_s": round(time.monotonic() - running.started, 6),
                "error": outcome.error or None,
            },
        )
