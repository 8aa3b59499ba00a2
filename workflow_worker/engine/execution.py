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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from redis.exceptions import RedisError

from workflow_worker.engine import groups
from workflow_worker.engine.groups import GROUP_FIELD
from workflow_worker.engine.job import InvalidJob, Job, State, decode_job, with_id
from workflow_worker.engine.lane import Lane
from workflow_worker.engine.outcome import (
    Outcome,
    expired,
    failed,
    invalid,
    oversized,
    succeeded,
)
from workflow_worker.engine.progress import Progress, settle
from workflow_worker.engine.progress import report as report_progress
from workflow_worker.engine.queue import Claimed, Op, unix_now
from workflow_worker.engine.ratelimit import RateLimiter
from workflow_worker.engine.runnables import Runnable, runnables
from workflow_worker.engine.threads import Threads
from workflow_worker.errors import Permanent, Retry
from workflow_worker.ops.metrics import Metrics
from workflow_worker.settings import Settings
from workflow_worker.workflows.compose import Composer
from workflow_worker.workflows.context import JobContext, WorkflowRegistry
from workflow_worker.workflows.steps import CHECKPOINT, SLEEP, Steps
from workflow_worker.workflows.workflows import Hooks, Policy

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
    # Set by the job's first `ctx.progress()` (engine/progress.py).
    progress: Progress | None = None

    def report_progress(self, fraction: float, message: str) -> None:
        report_progress(self, fraction, message)

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
        # Plain `def` workflows run in this pool; it starts no thread until one needs it.
        self.threads = Threads(settings.sync_threads)
        self._funcs = runnables(registry, self.threads)
        # A `Workflows` registry's policies and hooks; a plain mapping has none (no cost).
        self.policies: dict[str, Policy] = getattr(registry, "policies", {})
        hooks: Hooks | None = getattr(registry, "hooks", None)
        self.hooks = hooks if hooks else None
        # What WORKER_LIFESPAN yielded: `ctx.state` of every job.
        self.state: Any = None
        self.http = http
        self.worker_id = worker_id
        # Called when this worker puts a job in a delayed set (retry, rate limit), so the
        # promoter wakes for it instead of waiting for its fallback timer.
        self.on_due: Callable[[], None] = lambda: None
        # Limit releases in flight (a task needs a reference until it ends).
        self._releasing: set[asyncio.Task[None]] = set()
        self._composers: dict[str, Composer] = {}
        self.steps = Steps(settings, metrics)

    async def run(self, item: Claimed, running: Running) -> None:
        """Handle one job up to handing its outcome to the batcher; `running.end()` follows
        once the outcome is stored (at once when there is none: the claim was lost)."""
        try:
            outcome = await self._attempt(item, running)
            if outcome is not None:
                job = running.job
                if running.progress is not None:
                    settle(running, outcome.op)
                if job is not None:
                    # Final ops release the lock; retries and deferrals keep it alive longer.
                    outcome.op.unique_key = str(job.extra.get("unique_key") or "")
                    outcome.op.cancellable = not job.generated_id
                    if job.extra and GROUP_FIELD in job.extra:
                        groups.attach(outcome.op, job)
                elif item.whole:
                    groups.attach_raw(outcome.op, item.raw)
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

    def _lookup(self, job: Job) -> Runnable | None:
        if self.settings.benchmark_mode:
            return self._benchmark
        return self._funcs.get(job.workflow)

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
        # Only jobs with extra fields (expires_at) or registries with policies pay for this.
        if (self.policies or job.extra) and (ended := self._prepare(item, job)) is not None:
            return ended
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
            retry, delay = self._verdict(job, outcome)
            return failed(running.token, job, outcome, duration, self.settings, retry, delay)
        return succeeded(running.token, job, outcome[0], duration, self.settings)

    def _prepare(self, item: Claimed, job: Job) -> Outcome | None:
        """Fill what the job leaves to its workflow's policy; end it if its expiry has
        passed. (Only for jobs with extra fields or registries with policies.)"""
        policy = self.policies.get(job.workflow)
        if policy is not None:
            job.timeout = job.timeout or policy.timeout
            job.max_attempts = job.max_attempts or policy.max_attempts
        expires_at = job.extra.get("expires_at")
        if expires_at is not None and _past(expires_at):
            return expired(item.token, job)
        return None

    def _verdict(self, job: Job, exc: BaseException) -> tuple[bool, float | None]:
        """(may retry, delay or None for the backoff) for an attempt that raised `exc`."""
        if isinstance(exc, Retry):
            return True, exc.delay
        if isinstance(exc, Permanent):
            return False, None
        policy = self.policies.get(job.workflow)
        return (policy is None or policy.retries(exc)), None

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
        self, func: Runnable, job: Job, running: Running
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
        ctx = self._context(job, running)
        try:
            if self.hooks is None:
                return (await func(job.payload, ctx),)
            return (await self._hooked(self.hooks, func, job.payload, ctx),)
        except asyncio.CancelledError:
            if running.stop_reason is None or running.task is None:
                raise
            # Our own interrupt (timeout, drain deadline, cancel request, lost lease), not a
            # task cancel: undo it so the bookkeeping that follows runs normally.
            running.task.uncancel()
            if running.stop_reason == TIMED_OUT:
                timed_out = JobTimeout(f"timed out after {timeout:g}s")
                if self.hooks is not None:
                    await _run_hooks(self.hooks.failure, ctx, timed_out)
                return timed_out
            return None
        except Exception as exc:
            return exc
        finally:
            expiry.cancel()
            running.in_workflow = False

    @staticmethod
    async def _hooked(
        hooks: Hooks, func: Runnable, payload: dict[str, Any], ctx: JobContext
    ) -> Any:
        """The workflow between its job hooks; a hook's own error is logged, never raised."""
        await _run_hooks(hooks.before, ctx)
        try:
            result = await func(payload, ctx)
        except Exception as exc:
            await _run_hooks(hooks.failure, ctx, exc)
            raise
        await _run_hooks(hooks.after, ctx, result)
        return result

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
            state=self.state,
            handle=running,
            composer=self._composer(lane),
        )

    def _composer(self, lane: Lane) -> Composer:
        """One per lane, made on its first job (what `ctx.enqueue` and the like need)."""
        composer = self._composers.get(lane.name)
        if composer is None:
            composer = self._composers[lane.name] = Composer(self.settings, lane.queue)
        return composer

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
        # A final failure is logged at ERROR with its traceback, whatever the level.
        final_failure = outcome.status == "failure"
        if not final_failure and not log.isEnabledFor(logging.INFO):
            return
        job = running.job
        extra = {
            "job_id": outcome.op.job_id or (job.id if job else None),
            "workflow": job.workflow if job else None,
            "attempt": job.attempt if job else None,
            "queue": running.lane.name,
            "outcome": outcome.status or "requeued",
            "duration_s": round(time.monotonic() - running.started, 6),
            "error": outcome.error or None,
        }
        if final_failure:
            # The same "job finished" line, at ERROR and with the last attempt's traceback.
            extra["traceback"] = outcome.op.status.get("traceback") or None
            log.error("job finished", extra=extra)
            return
        log.info("job finished", extra=extra)


def _past(expires_at: object) -> bool:
    """A job's `expires_at` (Unix seconds) has passed; a value that is not a number never does."""
    return (
        isinstance(expires_at, int | float)
        and not isinstance(expires_at, bool)
        and time.time() >= expires_at
    )


async def _run_hooks(hooks: list[Any], ctx: JobContext, *args: Any) -> None:
    for hook in hooks:
        try:
            await hook(ctx, *args)
        except Exception:
            log.exception(
                "job hook %s raised; the job's outcome is unchanged",
                getattr(hook, "__qualname__", hook),
                extra={"job_id": ctx.job_id, "workflow": ctx.workflow},
            )
