"""The composition root: build every part, run until a signal, then shut down in order.

Start-up: read the Redis server and refuse one that cannot keep the promises (version, eviction
policy; engine/preflight.py), register, then start the liveness thread (lease renewal and the
event-loop watchdog), the chores and the claim loop.

Shutdown order (SIGTERM or SIGINT): stop claiming at once and turn /readyz to 503; give running
jobs up to WORKER_SHUTDOWN_TIMEOUT; cancel what still runs and put it back at the queue's
consuming end; store every pending state change; put back any claim still held; give up the
lease; stop HTTP; close Redis. A second signal skips the wait but still requeues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry
from redis.exceptions import AuthenticationError, AuthorizationError, RedisError

from workflow_worker.connection import connect
from workflow_worker.engine.batcher import Batcher
from workflow_worker.engine.chores import Chores
from workflow_worker.engine.consumer import Consumer
from workflow_worker.engine.execution import Executor
from workflow_worker.engine.lane import Lane
from workflow_worker.engine.liveness import Liveness
from workflow_worker.engine.preflight import ServerFacts, check, read_facts
from workflow_worker.engine.queue import RedisQueue
from workflow_worker.engine.ratelimit import RateLimiter
from workflow_worker.engine.schedule import parse_schedule
from workflow_worker.engine.scheduler import Scheduler
from workflow_worker.engine.threads import current as current_threads
from workflow_worker.errors import ConfigError
from workflow_worker.ops.http import Health, create_app, start_http
from workflow_worker.ops.logs import flush_logs
from workflow_worker.ops.metrics import Metrics
from workflow_worker.ops.podcost import PodDeletionCost
from workflow_worker.producer.routing import warn_unconsumed
from workflow_worker.settings import Settings
from workflow_worker.workflows.context import WorkflowRegistry
from workflow_worker.workflows.lifespan import lifespan_state, load_lifespan
from workflow_worker.workflows.registry import check_rate_limits, check_registry, load_registry

__all__ = ["Worker"]

log = logging.getLogger("workflow_worker")
# Once jobs are cancelled, storing their requeue must not hang the exit forever if Redis is
# gone: what is not stored stays claimed and other workers re-deliver it after the lease.
REQUEUE_DEADLINE = 20.0


class Worker:
    """One worker process: the consumer, its chores and its HTTP endpoints."""

    def __init__(
        self,
        settings: Settings,
        registry: WorkflowRegistry | None = None,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        if registry is not None:
            check_registry(registry, None)
        self.workflows = registry if registry is not None else load_registry(settings.workflows)
        self.lifespan = load_lifespan(settings.lifespan)
        self._check_schedule()
        check_rate_limits(settings, self.workflows)
        warn_unconsumed(self.workflows, settings.queues)
        self.prom = metrics_registry or CollectorRegistry()
        self.metrics = Metrics(self.prom, settings.queues)
        self.stopping = asyncio.Event()
        self.hard_stop = asyncio.Event()
        self.draining = False
        self.http_port = settings.http_port
        self._client: Any = None
        self._last_redis_error = ""
        self.server: ServerFacts | None = None
        self.liveness: Liveness | None = None
        self._left = False

    def request_stop(self) -> None:
        """First call: drain. Second call: skip the wait (jobs are still requeued)."""
        if self.stopping.is_set():
            log.warning("second stop signal: cancelling running jobs now and requeueing them")
            self.hard_stop.set()
        self.stopping.set()

    async def run(self, ready: asyncio.Event | None = None) -> int:
        """Run until `request_stop` (or a signal); returns the process exit code. The
        lifespan (WORKER_LIFESPAN) is entered first and left last, after the drain."""
        async with lifespan_state(self.lifespan, self.settings.lifespan) as state:
            return await self._serve(ready, state)

    async def _serve(self, ready: asyncio.Event | None, state: Any) -> int:
        self._client = client = connect(self.settings)
        lanes = [self._lane(client, name) for name in self.settings.queues]
        async with aiohttp.ClientSession() as http:
            executor = Executor(
                self.settings, self.metrics, self.workflows, http, lambda: consumer.worker_id
            )
            executor.state = state
            # Jobs' tasks inherit it: `threads.call()` inside a job finds this worker's pool.
            current_threads.set(executor.threads)
            consumer = Consumer(self.settings, lanes, self.metrics, executor)
            # Built before anything starts, so a missing token or pod identity stops start-up.
            pod_cost = PodDeletionCost.from_settings(
                self.settings, lambda: len(consumer.running), self.prom
            )
            chores = Chores(self.settings, consumer, self.metrics)
            executor.on_due = chores.wake_promoter
            health = Health(
                last_tick=lambda: chores.last_tick,
                ready=self._ready(chores, consumer),
                refresh=chores.refresh_gauges,
                details=lambda: {"redis": self.server.as_dict()} if self.server else {},
            )
            runner, self.http_port = await start_http(
                create_app(health, self.prom), self.settings.http_host, self.settings.http_port
            )
            self._install_signals()
            self.metrics.set_all(self.metrics.capacity, self.settings.concurrency)
            for lane in lanes:
                lane.batcher.start()
            background = [asyncio.create_task(chores.ticker(), name="ticker")]
            if pod_cost is not None:
                background.append(pod_cost.start())  # chores.stop(background) cancels it
            liveness = self.liveness = self._liveness(lanes, consumer, chores)
            try:
                if await self._register(chores):
                    liveness.start()
                    consumer.on_busy = liveness.busy
                    background += [*chores.tasks(), *self._scheduler(client)]
                    claim = asyncio.create_task(consumer.claim_loop(), name="claim")
                    log.info("worker started", extra=self._describe(consumer))
                    if ready is not None:
                        ready.set()
                    await self.stopping.wait()
                    await self._drain(consumer, claim)
                    await self._leave(consumer, chores)
            finally:
                liveness.stop()
                await chores.stop(background)
                await asyncio.to_thread(liveness.join, 5.0)
                await executor.threads.close()
                for lane in lanes:
                    await lane.batcher.close()
                await executor.steps.close()
                await runner.cleanup()
                await client.aclose()
        log.info("worker stopped")
        flush_logs()
        return 0

    def _check_schedule(self) -> None:
        """Fail at start-up when a schedule names a workflow the registry does not have."""
        if self.settings.benchmark_mode:
            return
        for entry in parse_schedule(self.settings.schedule):
            if entry.workflow not in self.workflows:
                raise ConfigError(
                    "WORKER_SCHEDULE",
                    self.settings.schedule,
                    f"workflows of WORKER_WORKFLOWS; schedule {entry.name!r} names "
                    f"{entry.workflow!r}, which is not one",
                )

    def _scheduler(self, client: Any) -> list[asyncio.Task[None]]:
        """Periodic workflows (WORKER_SCHEDULE): every replica runs them, Redis picks one."""
        entries = parse_schedule(self.settings.schedule)
        if not entries:
            return []
        queue = self.settings.queue
        scheduler = Scheduler(
            client,
            queue,
            entries,
            result_ttl=self.settings.result_ttl,
            max_attempts=self.settings.max_attempts,
            on_redis_error=lambda op, _exc: self.metrics.redis_error(op, queue),
        )
        # Stops with the drain, so a replica that is going away enqueues nothing more.
        return [asyncio.create_task(scheduler.run(self.stopping), name="scheduler")]

    def _liveness(self, lanes: list[Lane], consumer: Consumer, chores: Chores) -> Liveness:
        def lease_gone() -> None:
            # After the exit gave the lease up, a renewal finding it gone is no news.
            if not self._left:
                consumer.lease_lost.set()

        return Liveness(
            self.settings,
            lanes,
            self.metrics,
            worker_id=lambda: consumer.worker_id,
            running=lambda: consumer.running,
            renewed_at=lambda: chores.renewed_at,
            info=chores.info,
            on_lease_gone=lease_gone,
            on_renewed=chores.renewed,
            on_failed=chores.renew_failed,
        )

    async def _check_server(self) -> None:
        """Read the server once per process and refuse one that cannot keep the promises."""
        self.server = facts = await read_facts(self._client)
        check(facts, self.settings)
        self.metrics.redis_info.clear()
        self.metrics.redis_info.labels(
            facts.version, facts.maxmemory_policy, facts.appendonly, facts.appendfsync
        ).set(1)
        log.info("redis server", extra=facts.as_dict())

    def _lane(self, client: Any, name: str) -> Lane:
        queue = RedisQueue(client, name, recent_jobs=self.settings.recent_jobs)
        limiter = None
        if self.settings.rate_limits:
            limiter = RateLimiter(client, name, dict(self.settings.rate_limits))
        return Lane(name, queue, Batcher(queue, self.metrics, self.settings.result_ttl), limiter)

    def _describe(self, consumer: Consumer) -> dict[str, Any]:
        return {
            "worker_id": consumer.worker_id,
            "queues": list(self.settings.queues),
            "concurrency": self.settings.concurrency,
            "http_port": self.http_port,
            "benchmark_mode": self.settings.benchmark_mode,
        }

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)

    def _ready(self, chores: Chores, consumer: Consumer) -> Any:
        async def ready() -> tuple[bool, str]:
            if self.draining or self.stopping.is_set():
                return False, "draining"
            if not chores.registered:
                return False, f"not registered with Redis yet: {self._last_redis_error}"
            try:
                await asyncio.wait_for(self._client.ping(), 2.0)
            except (RedisError, OSError, TimeoutError) as exc:
                return False, f"redis unreachable: {type(exc).__name__}: {exc}"
            if not consumer.claiming:
                return False, "not taking jobs"
            return True, "ok"

        return ready

    async def _register(self, chores: Chores) -> bool:
        """Register with Redis, retrying with backoff; False if told to stop first."""
        delay = 0.1
        while not self.stopping.is_set():
            try:
                if self.server is None:
                    await self._check_server()
                await chores.register()
                return True
            except (RedisError, OSError) as exc:
                self.metrics.redis_error("register")
                self._last_redis_error = f"{type(exc).__name__}: {exc}"
                what = (
                    "Redis refused the credentials (REDIS_USERNAME / REDIS_PASSWORD / REDIS_URL)"
                    if isinstance(exc, AuthenticationError | AuthorizationError)
                    else "cannot reach Redis"
                )
                log.error(
                    "%s at start-up, retrying in %.1fs: %s", what, delay, self._last_redis_error
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(delay * 2, 10.0)
        return False

    async def _drain(self, consumer: Consumer, claim: asyncio.Task[None]) -> None:
        self.draining = True
        self.metrics.set_all(self.metrics.draining, 1)
        consumer.stop_claiming()
        # Jobs using durable steps stop at their next step boundary and are requeued at once.
        tally = consumer.executor.steps.begin_drain()
        await asyncio.gather(claim, return_exceptions=True)
        timeout = 0.0 if self.hard_stop.is_set() else self.settings.shutdown_timeout
        log.info(
            "draining",
            extra={"running": len(consumer.running), "timeout_s": timeout},
        )
        idle = asyncio.ensure_future(consumer.wait_idle(timeout))
        hard = asyncio.ensure_future(self.hard_stop.wait())
        await asyncio.wait({idle, hard}, return_when=asyncio.FIRST_COMPLETED)
        hard.cancel()
        if not idle.done() or not idle.result():
            idle.cancel()
            log.warning("drain deadline: requeueing %d running jobs", len(consumer.running))
            consumer.interrupt_all("shutdown")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer.wait_idle(None), REQUEUE_DEADLINE)
            for lane in consumer.lanes:
                await asyncio.wait_for(lane.batcher.flush(), REQUEUE_DEADLINE)
        log.info("drained", extra=tally.as_dict())

    async def _leave(self, consumer: Consumer, chores: Chores) -> None:
        """Put back any claim still held, then give up the lease so nobody waits for it."""
        if self.liveness is not None:
            self.liveness.stop()
        self._left = True
        try:
            if not consumer.running:
                await asyncio.wait_for(chores.release(), REQUEUE_DEADLINE)
            for lane in consumer.lanes:
                await asyncio.wait_for(lane.queue.unregister(consumer.worker_id), 5.0)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("could not remove the lease (it will expire): %s", exc)
