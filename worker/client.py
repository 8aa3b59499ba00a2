"""The producer API, replacing `task.delay()`: enqueue one or many jobs, read status and results.

`Client` is for asyncio code (a FastAPI handler); `SyncClient` for plain scripts. Both write the
full job envelope and a `queued` status record in one atomic round trip per call (bulk included).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from worker.connection import connect, connect_sync
from worker.job import Job, State, new_job_id
from worker.keys import QueueKeys
from worker.queue import QueueStats, RedisQueue, _text
from worker.settings import Settings

__all__ = [
    "Client",
    "JobFailed",
    "JobSpec",
    "PayloadTooLarge",
    "SyncClient",
    "enqueue",
    "enqueue_sync",
]

FINAL_STATES = {State.SUCCESS.value, State.FAILURE.value, State.DEAD.value, State.CANCELLED.value}


class PayloadTooLarge(ValueError):
    """The encoded job is over WORKER_MAX_PAYLOAD_BYTES."""


class JobFailed(RuntimeError):
    """`result()` of a job that ended without success; carries its status record."""

    def __init__(self, job_id: str, record: Mapping[str, str]) -> None:
        state = record.get("state", "?")
        super().__init__(f"job {job_id} ended as {state}: {record.get('error') or 'no error'}")
        self.job_id = job_id
        self.record = dict(record)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job for `enqueue_many`."""

    workflow: str
    payload: Mapping[str, Any] | None = None
    id: str | None = None
    max_attempts: int | None = None
    timeout: float | None = None


def _prepare(spec: JobSpec, settings: Settings) -> tuple[Job, str, dict[str, str]]:
    if not isinstance(spec.workflow, str) or not spec.workflow:
        raise ValueError("workflow must be a non-empty string")
    job = Job(
        workflow=spec.workflow,
        payload=dict(spec.payload or {}),
        id=spec.id or new_job_id(),
        enqueued_at=time.time(),
        attempt=1,
        max_attempts=spec.max_attempts or settings.max_attempts,
        timeout=spec.timeout or settings.job_timeout,
    )
    text = job.encode()
    size = len(text.encode("utf-8"))
    if size > settings.max_payload_bytes:
        raise PayloadTooLarge(
            f"job {job.id} is {size} bytes encoded, over the {settings.max_payload_bytes}-byte "
            "limit (WORKER_MAX_PAYLOAD_BYTES); store large data elsewhere and pass a reference"
        )
    status = {
        "state": State.QUEUED.value,
        "workflow": job.workflow,
        "attempt": "1",
        "max_attempts": str(job.max_attempts),
        "queue": settings.queue,
        "enqueued_at": f"{job.enqueued_at:.6f}",
    }
    return job, text, status


def _decode_record(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _result_of(job_id: str, record: dict[str, str]) -> Any:
    if record.get("state") != State.SUCCESS.value:
        raise JobFailed(job_id, record)
    raw = record.get("result", "null")
    return json.loads(raw) if raw else None


class Client:
    """Async producer and inspector for one queue."""

    def __init__(self, settings: Settings | None = None, redis: Any = None) -> None:
        self.settings = settings or Settings.from_env()
        self.redis = redis if redis is not None else connect(self.settings)
        self.keys = QueueKeys.for_queue(self.settings.queue)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.redis.aclose()

    async def enqueue(
        self, workflow: str, payload: Mapping[str, Any] | None = None, **kw: Any
    ) -> str:
        """Enqueue one job; returns its id. Keywords: id, max_attempts, timeout."""
        return (await self.enqueue_many([JobSpec(workflow, payload, **kw)]))[0]

    async def enqueue_many(self, specs: Iterable[JobSpec]) -> list[str]:
        """Enqueue many jobs in one pipelined, atomic round trip; returns their ids in order."""
        prepared = [_prepare(spec, self.settings) for spec in specs]
        async with self.redis.pipeline(transaction=True) as pipe:
            for job, text, status in prepared:
                pipe.hset(self.keys.job(job.id), mapping=status)
                pipe.expire(self.keys.job(job.id), self.settings.result_ttl)
                pipe.lpush(self.keys.queue, text)
            await pipe.execute()
        return [job.id for job, _, _ in prepared]

    async def status(self, job_id: str) -> dict[str, str] | None:
        """The job's status record, or None when unknown or expired."""
        raw = await self.redis.hgetall(self.keys.job(job_id))
        return _decode_record(raw) if raw else None

    async def result(self, job_id: str, timeout: float = 60.0, poll: float = 0.1) -> Any:
        """Wait for the job to end; return its result or raise `JobFailed` / `TimeoutError`."""
        deadline = time.monotonic() + timeout
        while True:
            record = await self.status(job_id)
            if record is not None and record.get("state") in FINAL_STATES:
                return _result_of(job_id, record)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout:g}s")
            await asyncio.sleep(poll)

    async def stats(self) -> QueueStats:
        return await RedisQueue(self.redis, self.settings.queue).stats()


class SyncClient:
    """The same API for code without an event loop (scripts, Django views, locust)."""

    def __init__(self, settings: Settings | None = None, redis: Any = None) -> None:
        self.settings = settings or Settings.from_env()
        self.redis = redis if redis is not None else connect_sync(self.settings)
        self.keys = QueueKeys.for_queue(self.settings.queue)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.redis.close()

    def enqueue(self, workflow: str, payload: Mapping[str, Any] | None = None, **kw: Any) -> str:
        return self.enqueue_many([JobSpec(workflow, payload, **kw)])[0]

    def enqueue_many(self, specs: Iterable[JobSpec]) -> list[str]:
        prepared = [_prepare(spec, self.settings) for spec in specs]
        with self.redis.pipeline(transaction=True) as pipe:
            for job, text, status in prepared:
                pipe.hset(self.keys.job(job.id), mapping=status)
                pipe.expire(self.keys.job(job.id), self.settings.result_ttl)
                pipe.lpush(self.keys.queue, text)
            pipe.execute()
        return [job.id for job, _, _ in prepared]

    def status(self, job_id: str) -> dict[str, str] | None:
        raw = self.redis.hgetall(self.keys.job(job_id))
        return _decode_record(raw) if raw else None

    def result(self, job_id: str, timeout: float = 60.0, poll: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            record = self.status(job_id)
            if record is not None and record.get("state") in FINAL_STATES:
                return _result_of(job_id, record)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout:g}s")
            time.sleep(poll)


async def enqueue(workflow: str, payload: Mapping[str, Any] | None = None, **kw: Any) -> str:
    """One-shot async enqueue using the environment's settings."""
    async with Client() as client:
        return await client.enqueue(workflow, payload, **kw)


def enqueue_sync(workflow: str, payload: Mapping[str, Any] | None = None, **kw: Any) -> str:
    """One-shot blocking enqueue using the environment's settings."""
    with SyncClient() as client:
        return client.enqueue(workflow, payload, **kw)
