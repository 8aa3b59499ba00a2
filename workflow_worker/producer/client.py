"""The producer API, replacing `task.delay()`: enqueue, inspect, cancel, and dead-letter tools.

`Client` is for asyncio code (a FastAPI handler); `SyncClient` for plain scripts. Both write
the full job envelope and its status record in one atomic round trip per call (bulk included),
and share the request builders in `workflow_worker.producer.requests`.

Given `workflows=` (a `Workflows` registry), a client sends each job to its workflow's declared
queue (`@workflows.workflow(queue=...)`) and finds jobs there by id; see
`workflow_worker.producer.routing`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workflow_worker.connection import connect, connect_sync
from workflow_worker.engine.job import State
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.queue import QueueStats, RedisQueue
from workflow_worker.engine.scripts import Scripts
from workflow_worker.producer.compose import Chain, chain_call, group_call
from workflow_worker.producer.requests import (
    DeadLetter,
    DuplicateJob,
    Enqueued,
    JobFailed,
    JobSpec,
    PayloadTooLarge,
    cancel_call,
    decode_record,
    enqueue_call,
    enqueue_results,
    parse_dead_letters,
    requeue_call,
    result_of,
)
from workflow_worker.producer.routing import Routes, first_found
from workflow_worker.settings import Settings

if TYPE_CHECKING:
    from workflow_worker.workflows.workflows import Workflows

__all__ = [
    "Client",
    "DeadLetter",
    "DuplicateJob",
    "Enqueued",
    "JobFailed",
    "JobSpec",
    "PayloadTooLarge",
    "SyncClient",
    "enqueue",
    "enqueue_sync",
]

FINAL_STATES = {
    State.SUCCESS.value,
    State.FAILURE.value,
    State.DEAD.value,
    State.CANCELLED.value,
    State.EXPIRED.value,
}


class Client:
    """Async producer and inspector for one queue (`settings.queue`, or `queue=`); given
    `workflows=` (a `Workflows` registry), also for the queues its workflows declare: each job
    goes to its workflow's queue, and jobs are found there by id."""

    def __init__(
        self,
        settings: Settings | None = None,
        redis: Any = None,
        queue: str | None = None,
        *,
        workflows: Workflows | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.redis = redis if redis is not None else connect(self.settings)
        self.keys = QueueKeys.for_queue(queue or self.settings.queue)
        self.scripts = Scripts.register(self.redis)
        # None unless `workflows` declares queues: then every call takes the plain path.
        self.routes = Routes.of(workflows, self.keys)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's Redis connections (`async with` does it for you)."""
        await self.redis.aclose()

    async def enqueue(
        self, workflow: str, payload: Mapping[str, Any] | None = None, **options: Any
    ) -> str:
        """Enqueue one job and return its id; `DuplicateJob` if its unique key is taken.

        Options: id, max_attempts, timeout, delay (seconds), at (Unix time or aware
        datetime), unique_key, expires (seconds from now, or an aware datetime: a job not
        started by then ends as `expired` and never runs).
        """
        (result,) = await self.submit([JobSpec(workflow, payload, **options)])
        if not result.created:
            raise DuplicateJob(result)
        return result.id

    async def enqueue_many(self, specs: Iterable[JobSpec]) -> list[str]:
        """Enqueue many jobs in one atomic round trip (one per queue when routed by
        `workflows=`); their ids in input order (a duplicate gives the id of the job that
        holds its unique key)."""
        return [result.id for result in await self.submit(specs)]

    async def submit(self, specs: Iterable[JobSpec]) -> list[Enqueued]:
        """Enqueue many jobs; per job, in input order, its id and whether it was created."""
        if self.routes is not None:
            return await self._submit_routed(self.routes, list(specs))
        call = enqueue_call(list(specs), self.settings, self.keys)
        raw = await self.scripts.enqueue(keys=call.keys, args=call.args)
        return enqueue_results(call, raw)

    async def _submit_routed(self, routes: Routes, specs: list[JobSpec]) -> list[Enqueued]:
        # Every call is built (and so every spec checked) before the first is sent.
        calls = [
            (positions, enqueue_call([specs[i] for i in positions], self.settings, keys))
            for keys, positions in routes.split(specs)
        ]
        out: list[Enqueued | None] = [None] * len(specs)
        for positions, call in calls:
            raw = await self.scripts.enqueue(keys=call.keys, args=call.args)
            for position, result in zip(positions, enqueue_results(call, raw), strict=True):
                out[position] = result
        return [result for result in out if result is not None]

    async def group(
        self, specs: Iterable[JobSpec], then: JobSpec | None = None, *, id: str | None = None
    ) -> str:
        """Run `specs` as a group and, once every one has ended, `then` with their outcomes
        under `payload["results"]` (exactly once); the group's id (also the callback's). A
        group whose `id` exists already is left as it is (docs/composition.md)."""
        call, composed = group_call(specs, then, self.settings, self.keys, id)
        await self.scripts.group(keys=call.keys, args=call.args)
        return composed.id

    async def chain(self, links: Sequence[JobSpec] | Chain, *, id: str | None = None) -> list[str]:
        """Run `links` (a list, or `a | b | c`) one after another, each given the previous
        one's outcome under `payload["previous"]`; their ids, first to last."""
        call, composed = chain_call(links, self.settings, self.keys, id)
        await self.scripts.group(keys=call.keys, args=call.args)
        return list(composed.jobs)

    async def status(self, job_id: str) -> dict[str, Any] | None:
        """The job's status record (numbers as numbers), or None when unknown or expired.
        With `workflows=`, a job not in the client's queue is looked for in the declared
        queues (one more round trip, pipelined)."""
        raw = await self.redis.hgetall(self.keys.job(job_id))
        if raw or self.routes is None:
            return decode_record(raw) if raw else None
        return (await self._elsewhere(self.routes, job_id))[1]

    async def _lookup(
        self, job_id: str, keys: QueueKeys
    ) -> tuple[QueueKeys, dict[str, Any] | None]:
        """(queue, record) of the job, looked for in `keys`; when that is the client's own
        queue and the job is not there, in the declared queues."""
        raw = await self.redis.hgetall(keys.job(job_id))
        if raw:
            return keys, decode_record(raw)
        if self.routes is None or keys is not self.keys:
            return keys, None
        found, record = await self._elsewhere(self.routes, job_id)
        return found or keys, record

    async def _elsewhere(
        self, routes: Routes, job_id: str
    ) -> tuple[QueueKeys | None, dict[str, Any] | None]:
        """(queue, record) of a job looked for in the declared queues other than the
        client's own, in one pipelined round trip."""
        if not routes.others:
            return None, None
        pipe = self.redis.pipeline(transaction=False)
        for other in routes.others:
            pipe.hgetall(other.job(job_id))
        answers = await pipe.execute()
        found = first_found(routes.others, answers)
        if found is None:
            return None, None
        return found, decode_record(answers[routes.others.index(found)])

    async def result(self, job_id: str, timeout: float = 60.0, poll: float = 0.1) -> Any:
        """Wait for the job to end; return its result or raise `JobFailed` / `TimeoutError`."""
        deadline = time.monotonic() + timeout
        keys = self.keys  # once found in a declared queue, polled there alone
        while True:
            keys, record = await self._lookup(job_id, keys)
            if record is not None and record.get("state") in FINAL_STATES:
                return result_of(job_id, record)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout:g}s")
            await asyncio.sleep(poll)

    async def cancel(self, job_id: str) -> str:
        """Cancel a job. Answers "cancelled" (it was waiting: it never runs), "cancelling" (it
        runs: its worker cancels it within a second), its final state when it had ended
        already, or "unknown" (no record)."""
        if self.routes is not None:
            keys, unique = await self._cancel_target(self.routes, job_id)
        else:
            keys, unique = self.keys, await self.redis.hget(self.keys.job(job_id), "unique_key")
        call = cancel_call(job_id, unique, self.settings, keys)
        answer = await self.scripts.cancel(keys=call.keys, args=call.args)
        return answer.decode() if isinstance(answer, bytes) else str(answer)

    async def _cancel_target(self, routes: Routes, job_id: str) -> tuple[QueueKeys, Any]:
        """(queue, unique key) of the job: its own queue's when it is there or nowhere."""
        state, unique = await self.redis.hmget(self.keys.job(job_id), ["state", "unique_key"])
        if state is not None or not routes.others:
            return self.keys, unique
        pipe = self.redis.pipeline(transaction=False)
        for other in routes.others:
            pipe.hmget(other.job(job_id), ["state", "unique_key"])
        answers = await pipe.execute()
        found = first_found(routes.others, answers)
        if found is None:
            return self.keys, unique
        return found, answers[routes.others.index(found)][1]

    async def stats(self) -> QueueStats:
        """Fleet-wide sizes of the queue: queued, in flight, delayed, dead letters, workers."""
        return await RedisQueue(self.redis, self.keys.queue, self.scripts).stats()

    async def dead_letters(self, start: int = 0, count: int = 50) -> list[DeadLetter]:
        """Dead-letter entries, newest first, with their positions."""
        raw = await self.redis.lrange(self.keys.dead, start, start + count - 1)
        return parse_dead_letters(raw, start)

    async def requeue_dead(self, index: int) -> bool:
        """Put the dead-letter entry at `index` (0 newest, -1 oldest) back on the queue with
        fresh attempts."""
        entries = await self.dead_letters(index, 1)
        if not entries:
            return False
        call = requeue_call(entries[0], self.keys)
        return bool(await self.scripts.requeue_dead(keys=call.keys, args=call.args))

    async def requeue_all_dead(self) -> int:
        """Requeue the dead-letter entries there are now, oldest first; returns how many moved.

        Entries are taken from the old end, so a job that fails again meanwhile (pushed on the
        new end) is not requeued a second time in the same call.
        """
        moved = 0
        for _ in range(int(await self.redis.llen(self.keys.dead))):
            moved += int(await self.requeue_dead(-1))
        return moved

    async def purge_dead(self) -> int:
        """Delete every dead-letter entry (and the texts kept beside them); returns how many
        there were."""
        keys = [self.keys.dead, self.keys.dead_blobs]
        return int(await self.scripts.purge_dead(keys=keys, args=[]))


class SyncClient:
    """The same API for code without an event loop (scripts, Django views, locust)."""

    def __init__(
        self,
        settings: Settings | None = None,
        redis: Any = None,
        queue: str | None = None,
        *,
        workflows: Workflows | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.redis = redis if redis is not None else connect_sync(self.settings)
        self.keys = QueueKeys.for_queue(queue or self.settings.queue)
        # The same scripts, registered on the blocking client (calls return values, not awaitables).
        self.scripts: Any = Scripts.register(self.redis)
        self.routes = Routes.of(workflows, self.keys)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's Redis connections (`with` does it for you)."""
        self.redis.close()

    def enqueue(
        self, workflow: str, payload: Mapping[str, Any] | None = None, **options: Any
    ) -> str:
        (result,) = self.submit([JobSpec(workflow, payload, **options)])
        if not result.created:
            raise DuplicateJob(result)
        return result.id

    def enqueue_many(self, specs: Iterable[JobSpec]) -> list[str]:
        return [result.id for result in self.submit(specs)]

    def submit(self, specs: Iterable[JobSpec]) -> list[Enqueued]:
        if self.routes is not None:
            return self._submit_routed(self.routes, list(specs))
        call = enqueue_call(list(specs), self.settings, self.keys)
        return enqueue_results(call, self.scripts.enqueue(keys=call.keys, args=call.args))

    def _submit_routed(self, routes: Routes, specs: list[JobSpec]) -> list[Enqueued]:
        calls = [
            (positions, enqueue_call([specs[i] for i in positions], self.settings, keys))
            for keys, positions in routes.split(specs)
        ]
        out: list[Enqueued | None] = [None] * len(specs)
        for positions, call in calls:
            raw = self.scripts.enqueue(keys=call.keys, args=call.args)
            for position, result in zip(positions, enqueue_results(call, raw), strict=True):
                out[position] = result
        return [result for result in out if result is not None]

    def group(
        self, specs: Iterable[JobSpec], then: JobSpec | None = None, *, id: str | None = None
    ) -> str:
        call, composed = group_call(specs, then, self.settings, self.keys, id)
        self.scripts.group(keys=call.keys, args=call.args)
        return composed.id

    def chain(self, links: Sequence[JobSpec] | Chain, *, id: str | None = None) -> list[str]:
        call, composed = chain_call(links, self.settings, self.keys, id)
        self.scripts.group(keys=call.keys, args=call.args)
        return list(composed.jobs)

    def status(self, job_id: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(self.keys.job(job_id))
        if raw or self.routes is None:
            return decode_record(raw) if raw else None
        return self._elsewhere(self.routes, job_id)[1]

    def _lookup(self, job_id: str, keys: QueueKeys) -> tuple[QueueKeys, dict[str, Any] | None]:
        raw = self.redis.hgetall(keys.job(job_id))
        if raw:
            return keys, decode_record(raw)
        if self.routes is None or keys is not self.keys:
            return keys, None
        found, record = self._elsewhere(self.routes, job_id)
        return found or keys, record

    def _elsewhere(
        self, routes: Routes, job_id: str
    ) -> tuple[QueueKeys | None, dict[str, Any] | None]:
        if not routes.others:
            return None, None
        pipe = self.redis.pipeline(transaction=False)
        for other in routes.others:
            pipe.hgetall(other.job(job_id))
        answers = pipe.execute()
        found = first_found(routes.others, answers)
        if found is None:
            return None, None
        return found, decode_record(answers[routes.others.index(found)])

    def result(self, job_id: str, timeout: float = 60.0, poll: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        keys = self.keys
        while True:
            keys, record = self._lookup(job_id, keys)
            if record is not None and record.get("state") in FINAL_STATES:
                return result_of(job_id, record)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout:g}s")
            time.sleep(poll)

    def cancel(self, job_id: str) -> str:
        if self.routes is not None:
            keys, unique = self._cancel_target(self.routes, job_id)
        else:
            keys, unique = self.keys, self.redis.hget(self.keys.job(job_id), "unique_key")
        call = cancel_call(job_id, unique, self.settings, keys)
        answer = self.scripts.cancel(keys=call.keys, args=call.args)
        return answer.decode() if isinstance(answer, bytes) else str(answer)

    def _cancel_target(self, routes: Routes, job_id: str) -> tuple[QueueKeys, Any]:
        state, unique = self.redis.hmget(self.keys.job(job_id), ["state", "unique_key"])
        if state is not None or not routes.others:
            return self.keys, unique
        pipe = self.redis.pipeline(transaction=False)
        for other in routes.others:
            pipe.hmget(other.job(job_id), ["state", "unique_key"])
        answers = pipe.execute()
        found = first_found(routes.others, answers)
        if found is None:
            return self.keys, unique
        return found, answers[routes.others.index(found)][1]

    def dead_letters(self, start: int = 0, count: int = 50) -> list[DeadLetter]:
        return parse_dead_letters(
            self.redis.lrange(self.keys.dead, start, start + count - 1), start
        )

    def requeue_dead(self, index: int) -> bool:
        entries = self.dead_letters(index, 1)
        if not entries:
            return False
        call = requeue_call(entries[0], self.keys)
        return bool(self.scripts.requeue_dead(keys=call.keys, args=call.args))

    def requeue_all_dead(self) -> int:
        moved = 0
        for _ in range(int(self.redis.llen(self.keys.dead))):
            moved += int(self.requeue_dead(-1))
        return moved

    def purge_dead(self) -> int:
        keys = [self.keys.dead, self.keys.dead_blobs]
        return int(self.scripts.purge_dead(keys=keys, args=[]))


async def enqueue(workflow: str, payload: Mapping[str, Any] | None = None, **options: Any) -> str:
    """One-shot async enqueue using the environment's settings."""
    async with Client() as client:
        return await client.enqueue(workflow, payload, **options)


def enqueue_sync(workflow: str, payload: Mapping[str, Any] | None = None, **options: Any) -> str:
    """One-shot blocking enqueue using the environment's settings."""
    with SyncClient() as client:
        return client.enqueue(workflow, payload, **options)
