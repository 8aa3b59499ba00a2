"""Coalesce job state changes into one Redis round trip per batch, and never drop one.

Under load many jobs finish while one batch is in flight; the next batch carries all of them, so
a job costs a fraction of a round trip. When Redis is down, pending changes stay queued and are
retried with backoff until they land: a finished job is never forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import replace

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from worker.connection import Dedicated
from worker.metrics import Metrics
from worker.queue import Op, RedisQueue

__all__ = ["Batcher"]

log = logging.getLogger("worker.batcher")
MAX_BATCH = 500


class Batcher:
    """Applies `Op`s in batches; `submit` resolves to the op's result (see `RedisQueue.apply`)."""

    def __init__(self, queue: RedisQueue, metrics: Metrics, result_ttl: int) -> None:
        self._queue = queue
        self._metrics = metrics
        self._ttl = result_ttl
        self._pending: list[tuple[Op, asyncio.Future[int] | None]] = []
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._submitted = 0
        self._applied = 0
        self._task: asyncio.Task[None] | None = None
        self._conn = Dedicated(queue.client)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="batcher")

    def post(self, op: Op) -> None:
        """Queue an op whose outcome nobody waits for (status updates on the hot path)."""
        self._pending.append((op, None))
        self._submitted += 1
        self._wake.set()

    def submit(self, op: Op) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((op, fut))
        self._submitted += 1
        self._wake.set()
        return fut

    async def flush(self) -> None:
        """Wait until everything submitted so far has been applied."""
        target = self._submitted
        while self._applied < target:
            self._progress.clear()
            await self._progress.wait()

    async def close(self) -> None:
        """Stop the flush loop; call `flush` first (with a deadline) to store what is pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._conn.close()

    async def _run(self) -> None:
        delay = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                try:
                    held = await self._apply(batch)
                except Exception as exc:
                    if not transient(exc):
                        # A bug here must not stop the bookkeeping for good: log and retry.
                        log.exception("unexpected error while storing job updates")
                    self._metrics.redis_error("apply", self._queue.keys.queue)
                    log.warning("redis unavailable, %d job updates wait: %s", len(batch), exc)
                    await asyncio.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 5.0)
                    continue
                delay = 0.05
                del self._pending[: len(batch)]
                self._applied += len(batch)
                self._progress.set()
                for (_, fut), ok in zip(batch, held, strict=True):
                    if fut is not None and not fut.done():
                        fut.set_result(ok)

    async def _apply(self, batch: list[tuple[Op, asyncio.Future[int] | None]]) -> list[int]:
        ops = [op for op, _ in batch]
        try:
            return await self._queue.apply(ops, self._ttl, self._conn)
        except Exception as exc:
            if transient(exc):
                raise
            # One bad op must not hold back the others forever: apply them one by one.
            return [await self._apply_one(op) for op in ops]

    async def _apply_one(self, op: Op) -> int:
        """Apply one op; if Redis refuses it, retry it sanitized; if that fails too, drop it."""
        for candidate in (op, sanitized(op)):
            try:
                return (await self._queue.apply([candidate], self._ttl, self._conn))[0]
            except Exception as exc:
                if transient(exc):
                    raise
                error = exc
        log.error(
            "cannot store a job update, dropping it (the job stays claimed until re-delivered)",
            extra={"kind": op.kind, "job_id": op.job_id, "error": repr(error)},
        )
        return 0


# Refusals that pass when the server recovers, as opposed to ones caused by the op itself.
_TRANSIENT_PREFIXES = (
    "OOM",
    "READONLY",
    "BUSY",
    "MASTERDOWN",
    "NOREPLICAS",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "LOADING",
    "NOAUTH",
    "NOPERM",
)


def transient(exc: BaseException) -> bool:
    """True when the whole batch should wait and be retried, not split."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
        return True
    if isinstance(exc, ResponseError):
        return str(exc).upper().startswith(_TRANSIENT_PREFIXES)
    return isinstance(exc, RedisError) and not isinstance(exc, ResponseError)


def _clean(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def sanitized(op: Op) -> Op:
    """The op with every string made plain UTF-8 (lone surrogates escaped)."""
    status = {_clean(k): _clean(v) for k, v in op.status.items()}
    return replace(op, job_id=_clean(op.job_id), arg=_clean(op.arg), status=status)
