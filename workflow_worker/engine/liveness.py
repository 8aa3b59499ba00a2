"""A thread beside the event loop: while jobs run, it keeps the worker's lease renewed whatever
the loop is doing, and watches the loop for a job that blocks it.

Jobs are asyncio tasks, so a workflow that calls blocking or CPU-bound code by accident holds the
whole event loop. If the lease were renewed only from the loop, such a job would make a healthy
worker look dead, and its jobs would be re-delivered across the fleet again and again. The loop
renews the lease every `WORKER_LEASE_SECONDS / 3` on the wake-up it shares with its other chores;
whenever it falls half an interval behind, this thread renews it over a Redis connection of its
own (as Celery and Dramatiq do with their heartbeat threads). With no job running nothing can
block the loop, so the thread sleeps until a job starts: an idle worker wakes no more often for it.

While jobs run it also samples which task the loop is executing. The same task seen twice in a
row is suspect; a probe posted to the loop then measures how long the loop stays blocked. Blocks
of `WORKER_LOOP_BLOCK_SECONDS` or more are logged with the job, its workflow and where it was
stuck, and counted in `workflow_event_loop_blocks_total`. A loop blocked past
`WORKER_LOOP_STALL_LIMIT` is treated as dead: the lease is no longer renewed, so the fleet takes
its jobs back (a job cannot time out while it holds the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from workflow_worker.connection import connect_sync
from workflow_worker.engine.execution import Running
from workflow_worker.engine.lane import Lane
from workflow_worker.engine.scripts import lua_source
from workflow_worker.ops.metrics import Metrics
from workflow_worker.settings import Settings

__all__ = ["Block", "Liveness"]

log = logging.getLogger("workflow_worker.liveness")
# How often the loop is sampled while jobs run, at most: a sample is a dict lookup, not a loop
# wake-up, but every wake of the thread costs a little CPU for as long as jobs run.
SAMPLE_SECONDS = 0.5


@dataclass(slots=True)
class Block:
    """One stretch of time the event loop spent in a single task without yielding."""

    task: asyncio.Task[Any] | None
    since: float
    where: str = ""
    probe_sent: bool = False
    reported_stall: bool = False


class Liveness:
    """The lease renewer and loop watchdog of one worker process (a daemon thread)."""

    def __init__(
        self,
        settings: Settings,
        lanes: list[Lane],
        metrics: Metrics,
        worker_id: Callable[[], str],
        running: Callable[[], dict[str, Running]],
        renewed_at: Callable[[], float],
        info: Callable[[], dict[str, Any]],
        on_lease_gone: Callable[[], None],
        on_renewed: Callable[[], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        self.settings = settings
        self.lanes = lanes
        self.metrics = metrics
        self.worker_id = worker_id
        self.running = running
        self.renewed_at = renewed_at
        self.info = info
        self.on_lease_gone = on_lease_gone
        self.on_renewed = on_renewed
        self.on_failed = on_failed
        self.blocks = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._stop = threading.Event()
        # Set when a job starts after none ran (and at stop): the idle thread waits on it.
        self._busy = threading.Event()
        self._thread: threading.Thread | None = None
        self._block: Block | None = None
        # A worker id whose lease was found gone: not renewed again (the loop registers anew).
        self._gone = ""
        # Two samples must fall inside a block of the reported length.
        self._sample_every = min(SAMPLE_SECONDS, settings.loop_block_seconds / 2)

    def start(self) -> None:
        """Start the thread; call from the event loop's thread."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._thread = threading.Thread(target=self._run, name="liveness", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end (it ends at once, or when its Redis call returns)."""
        self._stop.set()
        self._busy.set()

    def busy(self) -> None:
        """A job started after none ran (from the loop, on the hot path: one flag)."""
        self._busy.set()

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (blocking: call from a thread, not the loop)."""
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stalled(self) -> bool:
        """True while the loop has been blocked past the stall limit."""
        block = self._block
        return (
            block is not None
            and block.probe_sent
            and time.monotonic() - block.since > self.settings.loop_stall_limit
        )

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        client = connect_sync(self.settings)
        script = client.register_script(lua_source("heartbeat"))
        # The loop renews every interval; the thread steps in half an interval after a missed one.
        late = self.settings.heartbeat_interval * 1.5
        try:
            while not self._stop.is_set():
                if not self.running():
                    self._block = None
                    self._busy.wait()
                    self._busy.clear()
                    continue
                try:
                    self._sample()
                    if time.monotonic() - self.renewed_at() > late:
                        self._renew(script)
                except Exception:
                    # A bug here must not end the thread: a worker whose lease is never renewed
                    # again looks dead to the fleet while it goes on running jobs.
                    log.exception("liveness check failed")
                self._stop.wait(self._sample_every)
        finally:
            client.close()

    def _renew(self, script: Any) -> None:
        worker_id = self.worker_id()
        if not worker_id or worker_id == self._gone:
            return
        if self.stalled:
            block = self._block
            if block is not None and not block.reported_stall:
                block.reported_stall = True
                log.error(
                    "event loop blocked for %.1fs (over WORKER_LOOP_STALL_LIMIT): no longer "
                    "renewing the lease, so this worker's jobs are re-delivered",
                    time.monotonic() - block.since,
                    extra={"where": block.where},
                )
            return
        info = self.info()
        lease_ms = int(self.settings.lease_seconds * 1000)
        try:
            held = True
            for lane in self.lanes:
                keys, args = lane.queue.heartbeat_args(worker_id, lease_ms, info, register=False)
                held &= bool(script(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            self.on_failed(exc)
            return
        self.on_renewed()
        if not held:
            self._gone = worker_id
            self._call_soon(self.on_lease_gone)

    def _sample(self) -> None:
        loop = self._loop
        if loop is None:
            return
        task = asyncio.current_task(loop)
        block = self._block
        now = time.monotonic()
        if task is None or block is None or block.task is not task:
            # The loop moved on (or was idle at this instant): start watching afresh.
            self._block = Block(task, now) if task is not None else None
            return
        if not block.probe_sent:
            block.probe_sent = True
            block.where = self._where()
            self._call_soon(lambda: self._probe(block))

    def _where(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return ""
        stack = traceback.extract_stack(frame)[-3:]
        return " <- ".join(f"{f.filename}:{f.lineno} in {f.name}" for f in reversed(stack))

    def _call_soon(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                loop.call_soon_threadsafe(callback)

    # -- on the loop -------------------------------------------------------------------------

    def _probe(self, block: Block) -> None:
        """Runs once the loop is free again: the block is over."""
        if self._block is block:
            self._block = None
        seconds = time.monotonic() - block.since
        if seconds < self.settings.loop_block_seconds:
            return
        self.blocks += 1
        running = self._job_of(block.task)
        workflow = running.job.workflow if running and running.job else None
        queue = running.lane.name if running else None
        self.metrics.loop_blocked(queue, workflow, seconds)
        log.warning(
            "event loop blocked for %.1fs by %s: every job of this worker waited; run blocking "
            "or CPU-bound code in a thread (a sync workflow, or asyncio.to_thread)",
            seconds,
            f"job {running.job.id} ({workflow})" if running and running.job else "a task",
            extra={
                "job_id": running.job.id if running and running.job else None,
                "workflow": workflow,
                "blocked_s": round(seconds, 3),
                "where": block.where,
            },
        )

    def _job_of(self, task: asyncio.Task[Any] | None) -> Running | None:
        if task is None:
            return None
        for running in list(self.running().values()):
            if running.task is task:
                return running
        return None
