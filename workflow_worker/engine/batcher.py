"""Coalesce job state changes into one Redis round trip per batch, and never drop one.

Under load many jobs finish while one batch is in flight; the next batch carries all of them, so
a job costs a fraction of a round trip. When Redis is down, pending changes stay queued and are
retried with backoff until they land: a finished job is never forgotten.

Two paths share the queue of pending ops. The fast one has no task of its own: when no batch
is in flight, the ops of one loop iteration are written together right after it (a callback,
not a task), and the reply's callback (`ScriptLine`) runs each op's continuation and writes
the next batch with whatever queued up meanwhile. Anything unusual (no connection yet, a lost
or late reply, an error reply, an op Redis refuses) hands the queue to a recovery task, which
applies batches one by one with backoff, isolates a bad op, reloads a flushed script, and
gives the queue back to the fast path once it is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import replace

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workflow_worker.connection import SOCKET_TIMEOUT
from workflow_worker.engine.queue import Op, RedisQueue
from workflow_worker.engine.scriptline import Reply, ScriptLine
from workflow_worker.ops.metrics import Metrics

__all__ = ["Batcher"]

log = logging.getLogger("workflow_worker.batcher")
MAX_BATCH = 500
# A batch's ops travel as one bulk string (Redis refuses one over 512 MiB); large results and
# dead-letter entries split batches well before that.
MAX_BATCH_BYTES = 16 << 20
# Called with an op's result once it is applied: 1 claim held, 0 lost, 2 cancel requested.
Then = Callable[[int], None]


class Batcher:
    """Applies `Op`s in batches; `submit` resolves to the op's result (see `RedisQueue.apply`)."""

    def __init__(self, queue: RedisQueue, metrics: Metrics, result_ttl: int) -> None:
        self._queue = queue
        self._metrics = metrics
        self._ttl = result_ttl
        # Ops not yet applied, oldest first, each with what to call with its result.
        self._pending: list[tuple[Op, Then | None]] = []
        self._progress = asyncio.Event()
        self._submitted = 0
        self._applied = 0
        self._line = ScriptLine(queue.client, SOCKET_TIMEOUT)
        # Ops at the head of _pending that are on the wire (fast path); 0 when none is.
        self._sending = 0
        # A write of the pending ops is scheduled for the end of this loop iteration.
        self._due = False
        self._recovery: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        """Open the connection now rather than with the first op."""
        self._recover()

    def post(self, op: Op) -> None:
        """Queue an op whose outcome nobody waits for."""
        self._add(op, None)

    def store(self, op: Op, then: Then) -> None:
        """Queue an op; `then(result)` is called once it is applied (from the reply's callback,
        so it must not block)."""
        self._add(op, then)

    def submit(self, op: Op) -> asyncio.Future[int]:
        """Queue an op; the future resolves to its result."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._add(op, functools.partial(_resolve, fut))
        return fut

    async def flush(self) -> None:
        """Wait until everything submitted so far has been applied."""
        target = self._submitted
        while self._applied < target:
            self._progress.clear()
            await self._progress.wait()

    async def close(self) -> None:
        """Stop applying; call `flush` first (with a deadline) to store what is pending."""
        self._closed = True
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        if self._line.supported:
            await self._line.close()

    # -- fast path ---------------------------------------------------------------------------

    def _add(self, op: Op, then: Then | None) -> None:
        self._pending.append((op, then))
        self._submitted += 1
        if not self._sending and self._recovery is None and not self._due:
            # Written after the current callbacks, so the ops of jobs that start or finish in
            # the same loop iteration (a claim's worth of starts) leave in one batch.
            self._due = True
            asyncio.get_running_loop().call_soon(self._send_due)

    def _send_due(self) -> None:
        self._due = False
        if self._pending and not self._sending and self._recovery is None:
            self._send()

    def _send(self) -> None:
        """Write the next batch, or hand over to the recovery task if that cannot be done."""
        if self._closed:
            return
        if not self._line.ready:
            self._recover()
            return
        try:
            count, command = self._command(len(self._pending))
        except Exception:
            self._recover()  # an op that cannot even be encoded: isolated there
            return
        self._sending = count
        self._line.send(command, self._on_reply)

    def _command(self, pending: int) -> tuple[int, bytes]:
        """The packed command for the next batch and how many ops it carries: up to
        MAX_BATCH ops, halved while its encoding is over MAX_BATCH_BYTES (one op at least)."""
        count = min(pending, MAX_BATCH)
        while True:
            ops = [op for op, _ in self._pending[:count]]
            command = self._queue.apply_command(ops, self._ttl)
            if len(command) <= MAX_BATCH_BYTES or count == 1:
                return count, command
            count //= 2

    def _on_reply(self, reply: Reply) -> None:
        count, self._sending = self._sending, 0
        if self._closed:
            return  # closing dropped the connection; what it carried stays pending
        if isinstance(reply, BaseException):
            # The batch is still at the head of _pending: recovery applies it again.
            if transient(reply):
                self._failed(reply, count)
            self._recover()
            return
        try:
            held = [int(h) for h in reply]
        except (TypeError, ValueError):
            log.error("unexpected reply to a batch of job updates: %r", reply)
            self._recover()
            return
        self._settle(count, held)
        if self._pending:
            self._send()

    def _settle(self, count: int, held: list[int]) -> None:
        batch = self._pending[:count]
        del self._pending[:count]
        self._applied += count
        self._progress.set()
        for (_, then), ok in zip(batch, held, strict=True):
            if then is None:
                continue
            try:
                then(ok)
            except Exception:
                # One failing continuation must not keep the others from running.
                log.exception("job update continuation failed")

    # -- recovery ----------------------------------------------------------------------------

    def _recover(self) -> None:
        if self._recovery is None and not self._closed:
            self._recovery = asyncio.create_task(self._recover_run(), name="batcher")

    async def _recover_run(self) -> None:
        """Apply batches one at a time until none is pending and the connection is open."""
        delay = 0.05
        try:
            while self._pending or (self._line.supported and not self._line.ready):
                batch = self._pending[: self._batch_size()]
                try:
                    if self._line.supported and not self._line.ready:
                        await self._line.open()
                    if batch:
                        self._settle(len(batch), await self._apply(batch))
                except Exception as exc:
                    if self._line.supported:
                        # A fresh connection re-authenticates and finds a new Sentinel master.
                        self._line.drop()
                    self._failed(exc, len(batch))
                    await asyncio.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 5.0)
                    continue
                delay = 0.05
        finally:
            self._recovery = None
        if self._pending:
            self._send()

    def _batch_size(self) -> int:
        try:
            return self._command(len(self._pending))[0] if self._pending else 0
        except Exception:
            return 1  # an op that cannot be encoded: taken alone, then isolated

    def _failed(self, exc: BaseException, count: int) -> None:
        if not transient(exc):
            # A bug here must not stop the bookkeeping for good: log and retry.
            log.error("unexpected error while storing job updates", exc_info=exc)
        self._metrics.redis_error("apply", self._queue.keys.queue)
        log.warning("redis unavailable, %d job updates wait: %s", count, exc)

    async def _apply(self, batch: list[tuple[Op, Then | None]]) -> list[int]:
        ops = [op for op, _ in batch]
        try:
            return await self._call(ops)
        except Exception as exc:
            if transient(exc):
                raise
            # One bad op must not hold back the others forever: apply them one by one.
            return [await self._apply_one(op) for op in ops]

    async def _call(self, ops: list[Op]) -> list[int]:
        if not self._line.supported:
            return await self._queue.apply(ops, self._ttl, infer=True)
        command = self._queue.apply_command(ops, self._ttl)
        try:
            reply = await self._line.call(command)
        except NoScriptError:
            # SCRIPT LOAD then EVALSHA, as the client does: the documented ACL grants no EVAL.
            await self._line.call(self._queue.apply_load_command())
            reply = await self._line.call(command)
        return [int(h) for h in reply]

    async def _apply_one(self, op: Op) -> int:
        """Apply one op; if Redis refuses it, retry it sanitized; if that fails too, drop it."""
        for candidate in (op, sanitized(op)):
            try:
                return (await self._call([candidate]))[0]
            except Exception as exc:
                if transient(exc):
                    raise
                error = exc
        log.error(
            "cannot store a job update, dropping it (the job stays claimed until re-delivered)",
            extra={"kind": op.kind, "job_id": op.job_id, "error": repr(error)},
        )
        return 0


def _resolve(fut: asyncio.Future[int], result: int) -> None:
    if not fut.done():
        fut.set_result(result)


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
