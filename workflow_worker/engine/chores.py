"""Periodic chores of a worker, each a supervised loop: lease recovery, reaping, the audit of
its own claims, promotion, cancel requests, gauges, event-loop lag. Every chore covers all the
worker's lanes (queues). The lease is renewed here, on the same wake-up as the other chores;
while jobs run, a thread (`liveness.py`) renews it too whenever the loop falls behind, so a job
that blocks the event loop cannot make the worker look dead."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from redis.exceptions import RedisError

from workflow_worker.engine import reclaim
from workflow_worker.engine.consumer import Consumer
from workflow_worker.engine.events import EventListener
from workflow_worker.ops.metrics import Metrics
from workflow_worker.settings import Settings

__all__ = ["Chores", "new_worker_id"]

log = logging.getLogger("workflow_worker.chores")
# Each wake of an idle process costs CPU: the ticker shares the other chores' wake-ups (the
# default interval, WORKER_LEASE_SECONDS / 3, is 10 s).
TICK = 10.0
FULL_SCAN_EVERY = 10
PROMOTE_MIN_SLEEP = 0.02
try:
    _VERSION = version("workflow-worker")
except PackageNotFoundError:
    _VERSION = "0.0.0"


def new_worker_id() -> str:
    """host:pid:random; never contains '|', which separates a claim token's parts."""
    host = socket.gethostname().replace("|", "_")
    return f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Chores:
    """Background loops beside the claim loop: `ticker()` runs from start-up, `tasks()` once
    registered; `stop()` ends them all."""

    def __init__(self, settings: Settings, consumer: Consumer, metrics: Metrics) -> None:
        self.settings = settings
        self.consumer = consumer
        self.lanes = consumer.lanes
        self.metrics = metrics
        self.last_tick = time.monotonic()
        self.redis_ok = False
        self.registered = False
        self._connected_since: float | None = None
        # When the lease was last renewed (by the loop or the liveness thread), monotonic.
        self.renewed_at = time.monotonic()
        self._stop = asyncio.Event()
        self._busy: set[str] = set()
        self._wake = {"promote": asyncio.Event(), "cancel": asyncio.Event()}
        self._gauges_at = 0.0
        self._gauges_task: asyncio.Task[None] | None = None
        self._started = time.time()
        self._rounds = 0
        self._phase = random.uniform(0, settings.heartbeat_interval)

    @property
    def lease_ms(self) -> int:
        return int(self.settings.lease_seconds * 1000)

    def info(self) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self._started,
            "concurrency": self.settings.concurrency,
            "active": len(self.consumer.running),
            # For the console's worker list: which build runs, and in which pod.
            "version": _VERSION,
            "pod": self.settings.pod_name,
            "queues": list(self.settings.queues),
        }

    async def register(self) -> None:
        """Take a fresh worker id and lease on every lane (start-up, and after a lost lease)."""
        self.consumer.worker_id = new_worker_id()
        info = self.info()
        for lane in self.lanes:
            await lane.queue.register(self.consumer.worker_id, self.lease_ms, info)
        self.registered = True
        self._ok()

    def _ok(self) -> None:
        if not self.redis_ok:
            self._connected_since = time.monotonic()
        self.redis_ok = True
        self.metrics.set_all(self.metrics.redis_connected, 1)

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.redis_ok = False
        self._connected_since = None
        self.metrics.redis_error(operation)
        log.warning("redis %s failed: %s", operation, exc)

    # The liveness thread reports its renewals here (plain attribute writes and thread-safe
    # metrics: nothing here touches the event loop).
    def renewed(self) -> None:
        self.renewed_at = time.monotonic()
        self._ok()

    def renew_failed(self, exc: BaseException) -> None:
        self._failed("heartbeat", exc)

    def tasks(self) -> list[asyncio.Task[None]]:
        """The loops. Promotion and cancel checks are woken by events on the queues' channels;
        their timers are only the fallback for missed messages."""
        interval = self.settings.heartbeat_interval
        loops: list[tuple[str, Callable[[], Awaitable[float | None]]]] = [
            ("heartbeat", self._paced(self.heartbeat, interval)),
            ("reap", self._paced(self.reap, interval)),
            ("audit", self._paced(self.audit, max(self.settings.lease_seconds, 5.0))),
            ("promote", self.promote),
            ("cancel", self._paced(self.cancel_requests, interval)),
        ]
        out = [asyncio.create_task(self._loop(name, func), name=name) for name, func in loops]
        out.append(asyncio.create_task(self.lease_keeper(), name="lease"))
        channels = {lane.queue.keys.events: lane.name for lane in self.lanes}
        client = self.lanes[0].queue.client
        listener = EventListener(client, channels, self.on_event, self.on_subscribed)
        out.append(asyncio.create_task(listener.run(), name="events"))
        return out

    def wake_promoter(self) -> None:
        """A job was put in a delayed set: recompute when the next one is due."""
        self._wake["promote"].set()

    def on_subscribed(self) -> None:
        """Catch up on what may have been published while we were not listening."""
        self._wake["promote"].set()
        self._wake["cancel"].set()

    def on_event(self, queue: str, kind: str, arg: str) -> None:
        if kind == "due":
            self.wake_promoter()
            return
        for lane in self.lanes:
            if lane.name == queue and (running := self.consumer.cancellable(lane).get(arg)):
                log.info("cancel requested", extra={"job_id": arg})
                running.interrupt("cancelled")

    @staticmethod
    def _paced(
        func: Callable[[], Awaitable[None]], interval: float
    ) -> Callable[[], Awaitable[float]]:
        async def run() -> float:
            await func()
            return interval

        return run

    async def stop(self, tasks: list[asyncio.Task[None]], timeout: float = 5.0) -> None:
        """End every chore: those between calls at once, those in a Redis call when it returns.

        Cancelling a chore in the middle of a Redis call can strand a half-opened connection.
        """
        self._stop.set()
        for task in tasks:
            if task.get_name() not in self._busy:
                task.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, name: str, func: Callable[[], Awaitable[float | None]]) -> None:
        """Run `func` until stopped; it returns the seconds to sleep before the next run."""
        while not self._stop.is_set():
            pause: float | None = 1.0
            self._busy.add(name)
            try:
                pause = await func()
            except (RedisError, OSError) as exc:
                self._failed(name, exc)
            except Exception:
                log.exception("chore %s failed", name)
            finally:
                self._busy.discard(name)
            if self._stop.is_set():
                return
            delay = self._aligned(pause or 1.0)
            wake = self._wake.get(name)
            if wake is None:
                await asyncio.sleep(delay)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=delay)
            wake.clear()

    def _aligned(self, pause: float) -> float:
        """Seconds until the next multiple of `pause` on this process's own phase, for a full
        interval (at most `pause`); shorter pauses (a delayed job due soon) as they are.

        Chores with the same interval then wake together: an idle process's CPU goes mostly
        into wake-ups, so one wake-up for heartbeat, reap, promotion, cancel checks and the
        ticker costs a fraction of five. The random phase keeps processes apart.
        """
        if pause < self.settings.heartbeat_interval:
            return pause
        return pause - (time.monotonic() - self._phase) % pause

    async def heartbeat(self) -> None:
        """Renew the lease on every lane; a lease found gone wakes the lease keeper."""
        if self.consumer.lease_lost.is_set() or not self.registered:
            return
        info = self.info()
        held = True
        for lane in self.lanes:
            held &= await lane.queue.renew(self.consumer.worker_id, self.lease_ms, info)
        self.renewed()
        if not held:
            self.consumer.lease_lost.set()

    async def lease_keeper(self) -> None:
        """Register anew whenever the lease is found gone (by the liveness thread's renewal or
        a refused claim): this worker was presumed dead and its jobs were re-delivered."""
        delay = 0.1
        while not self._stop.is_set():
            await self.consumer.lease_lost.wait()
            self._busy.add("lease")
            try:
                await self._recover_lease()
                delay = 0.1
            except (RedisError, OSError) as exc:
                self._failed("register", exc)
                await asyncio.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 5.0)
            finally:
                self._busy.discard("lease")

    async def _recover_lease(self) -> None:
        if self.registered and await self._renew_lapsed():
            self.consumer.lease_lost.clear()
            return
        if self.registered:
            log.error(
                "lease lost: this worker was presumed dead and its %d jobs were re-delivered;"
                " dropping them here and registering again",
                len(self.consumer.running),
            )
            self.metrics.leases_lost.inc()
            self.consumer.interrupt_all("lease_lost")
            self.consumer.forget_unanswered()
            self.registered = False
        await self.register()
        self.consumer.lease_lost.clear()

    async def _renew_lapsed(self) -> bool:
        """Renew a lease that lapsed without being taken (a pause longer than the lease, but
        no reaper ran meanwhile): its claims are all still ours, so nothing is dropped. Once a
        reaper has removed it, renewal fails and the worker starts over."""
        info = self.info()
        held = True
        for lane in self.lanes:
            held &= await lane.queue.renew(self.consumer.worker_id, self.lease_ms, info)
        if held:
            self._ok()
            log.warning("lease renewed after it lapsed: no reaper had taken it")
        return held

    async def reap(self) -> None:
        """Re-deliver dead workers' jobs, but only after a full lease of our own connectivity.

        After an outage every lease looks expired; waiting one lease lets live workers renew
        theirs before anyone is declared dead.
        """
        since = self._connected_since
        if since is None or time.monotonic() - since < self.settings.lease_seconds:
            return
        self._rounds += 1
        full = self._rounds % FULL_SCAN_EVERY == 1
        for lane in self.lanes:
            done = await reclaim.reap(lane.queue, self.settings, full)
            if done.requeued:
                self.metrics.redeliveries.labels(lane.name).inc(done.requeued)
            if done.requeued or done.dead_lettered or done.workers_removed:
                log.warning(
                    "re-delivered jobs of dead workers",
                    extra={
                        "queue": lane.name,
                        "requeued": done.requeued,
                        "dead_lettered": done.dead_lettered,
                        "workers_removed": done.workers_removed,
                    },
                )

    async def audit(self) -> None:
        """Requeue claims of this worker that it is not running.

        A claim can outlive its job here: a claim call whose reply was lost and not asked
        again, an acknowledgement written to a primary that a failover then discarded, or a
        bug in the bookkeeping. Its worker is alive, so no reaper would ever take it back; the
        worker itself must. Requeues are conditional on the claim, so one acknowledged
        meanwhile is left alone.
        """
        consumer = self.consumer
        worker_id = consumer.worker_id
        for lane in self.lanes:
            horizon = consumer.next_call
            doubt = consumer.calls_in_doubt()
            claims = await lane.queue.claims_of(worker_id, self.settings.claim_limit)
            if consumer.worker_id != worker_id:
                return
            doubt |= consumer.calls_in_doubt()
            requeued = await reclaim.put_back_stray(
                lane.queue, self.settings, claims, consumer.running, horizon, doubt
            )
            if requeued:
                self.metrics.requeued.labels(lane.name, "stray_claim").inc(requeued)
                log.warning(
                    "requeued claims this worker held but was not running",
                    extra={"queue": lane.name, "requeued": requeued},
                )

    async def release(self) -> None:
        """At exit, once no job runs: put back every claim this worker still holds (a claim
        call stopped before its reply arrived), instead of leaving them to the reapers."""
        for lane in self.lanes:
            released = await reclaim.release(lane.queue, self.settings, self.consumer.worker_id)
            if released:
                self.metrics.requeued.labels(lane.name, "exit").inc(released)
                log.warning("requeued claims left at exit", extra={"released": released})

    async def promote(self) -> float:
        """Move due delayed jobs; sleep until the next one is due, or a heartbeat interval."""
        pause = self.settings.heartbeat_interval
        for lane in self.lanes:
            _, next_due = await lane.queue.promote()
            if next_due is not None:
                pause = min(pause, next_due)
        return max(pause, PROMOTE_MIN_SLEEP)

    async def cancel_requests(self) -> None:
        """Cancel running jobs whose producer asked for it (within one tick)."""
        for lane in self.lanes:
            running = self.consumer.cancellable(lane)
            if not running:
                continue
            ids = list(running)
            flags = await lane.queue.client.mget([lane.queue.keys.cancel(i) for i in ids])
            for job_id, flag in zip(ids, flags, strict=True):
                if flag is not None:
                    log.info("cancel requested", extra={"job_id": job_id})
                    running[job_id].interrupt("cancelled")

    async def refresh_gauges(self, wait: float = 1.0) -> None:
        """Refresh the fleet-wide gauges for a scrape, at most every WORKER_METRICS_INTERVAL.

        Waits at most `wait` seconds: a slow Redis must not time the scrape out; the refresh
        then finishes in the background and the next scrape shows it.
        """
        if self._gauges_task is None or self._gauges_task.done():
            if time.monotonic() - self._gauges_at < self.settings.metrics_interval:
                return
            self._gauges_at = time.monotonic()
            self._gauges_task = asyncio.create_task(self._gauges_quietly())
        await asyncio.wait({self._gauges_task}, timeout=wait)

    async def _gauges_quietly(self) -> None:
        try:
            await self.gauges()
        except (RedisError, OSError) as exc:
            self._failed("gauges", exc)

    async def gauges(self) -> None:
        m = self.metrics
        for lane in self.lanes:
            stats = await lane.queue.stats()
            m.queued.labels(lane.name).set(stats.queued)
            m.inflight.labels(lane.name).set(stats.inflight)
            m.delayed.labels(lane.name).set(stats.delayed)
            m.dead_letter.labels(lane.name).set(stats.dead)
            m.oldest_age.labels(lane.name).set(stats.oldest_age)
        self._ok()

    def _aligned_tick(self) -> float:
        """Seconds until the ticker's next multiple of TICK on the chores' phase."""
        return TICK - (time.monotonic() - self._phase) % TICK

    async def ticker(self) -> None:
        """Measure event-loop lag (also what /healthz reads)."""
        while not self._stop.is_set():
            due = time.monotonic() + self._aligned_tick()
            await asyncio.sleep(due - time.monotonic())
            now = time.monotonic()
            lag = max(0.0, now - due)
            self.last_tick = now
            self.metrics.set_all(self.metrics.loop_lag, lag)
