"""Prometheus metrics over a registry the caller creates (never the global one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["DURATION_BUCKETS", "Metrics"]

# 0.1 s to 30 min: AI calls take seconds, whole workflows minutes.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800)
WAIT_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    """Every metric the worker exports (names in docs/contract.md)."""

    def __init__(self, registry: CollectorRegistry, queues: tuple[str, ...] | str) -> None:
        self.registry = registry
        self.queues = (queues,) if isinstance(queues, str) else tuple(queues)
        q = ["queue"]
        self.active = Gauge(
            "workflow_jobs_active", "Jobs running in this process.", q, registry=registry
        )
        self.capacity = Gauge(
            "workflow_jobs_capacity", "Concurrency of this process.", q, registry=registry
        )
        self.queued = Gauge(
            "workflow_jobs_queued",
            "Jobs waiting in the queue list (fleet-wide).",
            q,
            registry=registry,
        )
        self.inflight = Gauge(
            "workflow_jobs_inflight",
            "Jobs claimed by any worker (fleet-wide processing hash size).",
            q,
            registry=registry,
        )
        self.delayed = Gauge(
            "workflow_jobs_delayed",
            "Delayed jobs and retries waiting for their time (fleet-wide).",
            q,
            registry=registry,
        )
        self.dead_letter = Gauge(
            "workflow_jobs_dead_letter",
            "Dead-letter list length (fleet-wide).",
            q,
            registry=registry,
        )
        self.oldest_age = Gauge(
            "workflow_queue_oldest_age_seconds",
            "Age of the job next in line, 0 when the queue is empty.",
            q,
            registry=registry,
        )
        self.jobs = Counter(
            "workflow_jobs",
            "Claimed messages by outcome.",
            ["queue", "workflow", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "workflow_job_duration_seconds",
            "Run time of one attempt.",
            ["queue", "workflow"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.wait = Histogram(
            "workflow_job_wait_seconds",
            "Time from enqueue to start.",
            ["queue", "workflow"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.redeliveries = Counter(
            "workflow_redeliveries",
            "Jobs this worker took back from workers whose lease expired.",
            q,
            registry=registry,
        )
        self.requeued = Counter(
            "workflow_jobs_requeued",
            "Jobs put back on the queue unfinished.",
            ["queue", "reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "workflow_duplicate_completions",
            "Completions of a job whose claim had been taken back: the job ran twice.",
            q,
            registry=registry,
        )
        self.redis_errors = Counter(
            "workflow_redis_errors",
            "Failed Redis calls.",
            ["queue", "operation"],
            registry=registry,
        )
        self.redis_connected = Gauge(
            "workflow_redis_connected",
            "1 when the last Redis call succeeded.",
            q,
            registry=registry,
        )
        self.draining = Gauge(
            "workflow_worker_draining", "1 while draining after SIGTERM.", q, registry=registry
        )
        self.loop_lag = Gauge(
            "workflow_event_loop_lag_seconds",
            "How late the event loop's 10 s ticker last woke.",
            q,
            registry=registry,
        )
        self.rate_limited = Counter(
            "workflow_jobs_rate_limited",
            "Starts put off by a fleet-wide rate or concurrency limit (the job waits, delayed).",
            ["queue", "workflow"],
            registry=registry,
        )
        self.leases_lost = Counter(
            "workflow_leases_lost",
            "Times this worker found its lease taken (it was presumed dead) and dropped its jobs.",
            registry=registry,
        )
        self.loop_blocks = Counter(
            "workflow_event_loop_blocks",
            "Times a task held the event loop for WORKER_LOOP_BLOCK_SECONDS or more (every job "
            "of the process waited), by the job's workflow (_none: not a job).",
            ["queue", "workflow"],
            registry=registry,
        )
        self.loop_blocked_seconds = Counter(
            "workflow_event_loop_blocked_seconds",
            "Seconds the event loop was held by such blocks.",
            ["queue", "workflow"],
            registry=registry,
        )
        self.redis_info = Gauge(
            "workflow_redis_info",
            "1, labelled with what the worker read of its Redis at the last check: version, "
            "maxmemory policy, appendonly and appendfsync (unknown when not readable).",
            ["version", "maxmemory_policy", "appendonly", "appendfsync"],
            registry=registry,
        )
        self.steps = Counter(
            "workflow_steps",
            "Durable steps by what happened: ran (ran and recorded) or replayed (an earlier "
            "attempt's recorded result returned, the step not run again).",
            ["queue", "workflow", "kind"],
            registry=registry,
        )
        self.drain_jobs = Counter(
            "workflow_drain_jobs",
            "Jobs that ended while this worker drained, by how: finished, checkpointed (stopped "
            "at a step boundary and requeued, or put to sleep), requeued (at the deadline, "
            "outside any step) or requeued_mid_step.",
            ["queue", "outcome"],
            registry=registry,
        )
        self._children: dict[tuple[str, ...], Any] = {}
        for queue in self.queues:
            for gauge in (self.active, self.capacity, self.queued, self.inflight, self.delayed):
                gauge.labels(queue)
            for gauge in (self.dead_letter, self.oldest_age, self.redis_connected, self.draining):
                gauge.labels(queue)
            self.loop_lag.labels(queue)
            self.redeliveries.labels(queue)
            self.duplicates.labels(queue)
            self.requeued.labels(queue, "shutdown")
            self.requeued.labels(queue, "checkpoint")
            for outcome in ("finished", "checkpointed", "requeued", "requeued_mid_step"):
                self.drain_jobs.labels(queue, outcome)
            # Zero until a block happens, so rates over them exist from the start.
            self.loop_blocks.labels(queue, "_none")
            self.loop_blocked_seconds.labels(queue, "_none")

    def _child(self, metric: Any, queue: str, *labels: str) -> Any:
        # labels() takes a lock and builds a tuple per call; jobs hit the same few children.
        key = (metric._name, queue, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(queue, *labels)
        return child

    def outcome(self, queue: str, workflow: str, status: str) -> None:
        self._child(self.jobs, queue, workflow, status).inc()

    def step(self, queue: str, workflow: str, kind: str) -> None:
        self._child(self.steps, queue, workflow, kind).inc()

    def drained(self, queue: str, outcome: str) -> None:
        self._child(self.drain_jobs, queue, outcome).inc()

    def observe_duration(self, queue: str, workflow: str, seconds: float) -> None:
        self._child(self.duration, queue, workflow).observe(seconds)

    def observe_wait(self, queue: str, workflow: str, seconds: float) -> None:
        self._child(self.wait, queue, workflow).observe(seconds)

    def track_active(self, queue: str, count: Callable[[], int]) -> None:
        """Report `count()` as the queue's running jobs, read at each scrape (not per job)."""
        self._child(self.active, queue).set_function(count)

    def set_all(self, gauge: Any, value: float) -> None:
        """Set a per-process gauge under every queue label this worker serves."""
        for queue in self.queues:
            self._child(gauge, queue).set(value)

    def loop_blocked(self, queue: str | None, workflow: str | None, seconds: float) -> None:
        """Count one event-loop block (from the loop, once it is free again)."""
        name = queue or self.queues[0]
        self._child(self.loop_blocks, name, workflow or "_none").inc()
        self._child(self.loop_blocked_seconds, name, workflow or "_none").inc(seconds)

    def redis_error(self, operation: str, queue: str | None = None) -> None:
        for name in (queue,) if queue else self.queues:
            self.redis_errors.labels(name, operation).inc()
            self._child(self.redis_connected, name).set(0)
