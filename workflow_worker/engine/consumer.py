"""`Consumer`: claim jobs only into free slots, run each as an asyncio task, record the outcome.

A slot is held from claim until the job's final state is stored in Redis, so the processing
hashes never hold more than `concurrency` jobs of this worker, and each queue list holds exactly
the jobs that wait (what KEDA scales on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from workflow_worker.engine.execution import Executor, Running
from workflow_worker.engine.lane import Lane, claim_order, wait_for_any
from workflow_worker.engine.queue import Claimed
from workflow_worker.ops.metrics import Metrics
from workflow_worker.settings import Settings

__all__ = ["Consumer", "Running"]

log = logging.getLogger("workflow_worker.jobs")
# The blocking wait only ends on its own to bound a lost connection; stop cancels it. It must
# stay under the client's socket timeout (10 s).
WAIT_TIMEOUT = 8.0


class LeaseLost(Exception):
    """A claim was refused: this worker holds no live lease."""


class Consumer:
    """The claim loop and the per-job tasks of one worker process."""

    def __init__(
        self, settings: Settings, lanes: list[Lane], metrics: Metrics, executor: Executor
    ) -> None:
        self.settings = settings
        self.lanes = lanes
        self.metrics = metrics
        self.executor = executor
        self.worker_id = ""
        self.running: dict[str, Running] = {}
        # Claim calls are numbered; a number is never reused for another call, so claim tokens
        # never repeat. A call whose outcome is unknown (an error after it may have run) is sent
        # again, same number and count, before anything else on its lane.
        self._calls = 0
        self._in_flight: set[int] = set()
        self._unanswered: dict[str, tuple[str, int, int]] = {}
        self._round = 0
        self._slot_freed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stop = asyncio.Event()
        self.lease_lost = asyncio.Event()
        # Called when the first job starts after none ran (the liveness thread wakes for it).
        self.on_busy: Callable[[], None] = lambda: None
        self.claiming = False
        for lane in lanes:
            metrics.track_active(lane.name, lane.running_jobs)

    @property
    def capacity(self) -> int:
        return self.settings.concurrency

    @property
    def next_call(self) -> int:
        """The number the next new claim call gets: every call numbered below it was sent."""
        return self._calls + 1

    def calls_in_doubt(self) -> set[int]:
        """Claim calls sent whose claims may be in Redis without being in `running`: the one
        awaiting its reply, and those whose reply was lost (they will be sent again)."""
        doubt = set(self._in_flight)
        doubt.update(call for wid, call, _ in self._unanswered.values() if wid == self.worker_id)
        return doubt

    # -- claiming ---------------------------------------------------------------------------

    async def claim_loop(self) -> None:
        """Claim as many jobs as there are free slots; block on the lists when all are empty."""
        delay = 0.05
        self.claiming = True
        try:
            while not self._stop.is_set():
                if len(self.running) >= self.capacity:
                    self._slot_freed.clear()
                    await self._until(self._slot_freed.wait())
                    continue
                try:
                    if not await self._claim_round():
                        # A wait that ends empty-handed (its timeout) needs no claim round: the
                        # lists were empty all along, so wait again at once.
                        while not await self._until(wait_for_any(self.lanes, WAIT_TIMEOUT)):
                            if self._stop.is_set():
                                break
                except LeaseLost:
                    self.lease_lost.set()
                    await self._until(asyncio.sleep(0.1))
                    continue
                except (RedisError, OSError) as exc:
                    self.metrics.redis_error("claim")
                    log.warning("claim failed, retrying in %.2fs: %s", delay, exc)
                    await self._until(asyncio.sleep(delay * (1 + random.random())))
                    delay = min(delay * 2, 5.0)
                    continue
                delay = 0.05
        finally:
            self.claiming = False

    async def _claim_round(self) -> int:
        """One pass over the lanes in claim order; returns how many jobs were claimed."""
        self._round += 1
        total = 0
        for lane in claim_order(self.lanes, self._round, self.settings.queue_fairness):
            free = self.capacity - len(self.running)
            if free <= 0:
                break
            claimed = await self._claim(lane, free)
            if claimed is None:
                raise LeaseLost
            self.metrics.redis_connected.labels(lane.name).set(1)
            for item in claimed:
                self._start(lane, item)
            total += len(claimed)
        return total

    async def _claim(self, lane: Lane, free: int) -> list[Claimed] | None:
        """One claim call on `lane`: the unanswered one again if there is one, else a new one."""
        pending = self._unanswered.get(lane.name)
        if pending is not None and pending[0] == self.worker_id:
            _, call, count = pending
        else:
            self._calls += 1
            call, count = self._calls, free
            self._unanswered[lane.name] = (self.worker_id, call, count)
        self._in_flight.add(call)
        try:
            claimed = await lane.queue.claim(self.worker_id, count, call, self.settings.claim_limit)
        finally:
            self._in_flight.discard(call)
        del self._unanswered[lane.name]
        return claimed

    def forget_unanswered(self) -> None:
        """Drop calls sent under a worker id this worker no longer has (lease lost)."""
        self._unanswered.clear()

    async def _until(self, aw: Awaitable[Any]) -> Any:
        """Await `aw` unless the stop event fires first (then `aw` is cancelled): its result,
        or None when stopped."""
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
        if not task.done() or task.cancelled():
            return None
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
        return task.result()

    def stop_claiming(self) -> None:
        self._stop.set()

    def _start(self, lane: Lane, item: Claimed) -> None:
        if not self.running:
            self.on_busy()
        running = self.running[item.token] = Running(item.token, lane, self._end)
        running.task = asyncio.create_task(self._process(item, running))
        lane.active += 1
        self._idle.clear()

    async def _process(self, item: Claimed, running: Running) -> None:
        try:
            await self.executor.run(item, running)
        except Exception:
            # The executor has given the slot back already (see Executor.run).
            log.exception("internal error while handling a job", extra={"token": item.token})

    def _end(self, running: Running) -> None:
        """A job's slot is free: its outcome is stored (or it had none)."""
        if self.running.pop(running.token, None) is None:
            return
        running.lane.active -= 1
        self._slot_freed.set()
        if not self.running:
            self._idle.set()

    # -- cancelling and stopping ------------------------------------------------------------

    def cancellable(self, lane: Lane) -> dict[str, Running]:
        """Running jobs of `lane` a producer can cancel (with an id of their own), by id."""
        return {
            r.job.id: r
            for r in self.running.values()
            if r.lane is lane and r.job is not None and not r.job.generated_id and r.in_workflow
        }

    def interrupt_all(self, reason: str) -> None:
        for running in list(self.running.values()):
            running.interrupt(reason)

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no job runs and every outcome is stored; False if `timeout` passed first."""
        if not self.running:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
