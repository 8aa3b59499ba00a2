"""`RedisQueue`: the reliable-queue operations of one queue, each one Redis round trip."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import hiredis

from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.scripts import Scripts

__all__ = ["Claimed", "Op", "QueueStats", "RedisQueue", "as_text", "unix_now"]

# json.dumps with options builds a new encoder per call; these run once per batch or job.
_encode_batch = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def unix_now() -> str:
    """Unix time as text: what status records and dead-letter entries store."""
    return f"{time.time():.3f}"


def as_text(value: bytes | str) -> str:
    """Redis replies as text (bytes decoded as UTF-8, invalid bytes replaced)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed message: its claim token and its text exactly as the producer wrote it."""

    token: str
    raw: bytes


@dataclass(slots=True)
class Op:
    """One conditional state change, applied by `apply-5.lua` (see its header for the kinds)."""

    kind: str
    token: str
    job_id: str = ""
    arg: str = ""
    score: int = 0
    status: dict[str, str] = field(default_factory=dict)
    unique_key: str = ""
    cancellable: bool = False


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Fleet-wide sizes of one queue."""

    queued: int
    inflight: int
    delayed: int
    dead: int
    workers: int
    oldest_age: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "inflight": self.inflight,
            "delayed": self.delayed,
            "dead": self.dead,
            "workers": self.workers,
            "oldest_age_seconds": round(self.oldest_age, 3),
        }


class RedisQueue:
    """Claim, wait, apply, reap, promote and inspect one queue."""

    def __init__(self, client: Any, queue: str, scripts: Scripts | None = None) -> None:
        self.client = client
        self.keys = QueueKeys.for_queue(queue)
        self.scripts = scripts or Scripts.register(client)

    async def register(self, worker_id: str, lease_ms: int, info: dict[str, Any]) -> None:
        await self._heartbeat(worker_id, lease_ms, info, register=True)

    async def renew(self, worker_id: str, lease_ms: int, info: dict[str, Any]) -> bool:
        """Renew the lease; False when it was gone (this worker was presumed dead)."""
        return await self._heartbeat(worker_id, lease_ms, info, register=False)

    async def _heartbeat(
        self, worker_id: str, lease_ms: int, info: dict[str, Any], *, register: bool
    ) -> bool:
        k = self.keys
        held = await self.scripts.heartbeat(
            keys=[k.workers, k.workers_info],
            args=[worker_id, lease_ms, json.dumps(info), "1" if register else "0"],
        )
        return bool(held)

    async def unregister(self, worker_id: str) -> None:
        k = self.keys
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(k.workers, worker_id)
            pipe.hdel(k.workers_info, worker_id)
            await pipe.execute()

    async def claim(self, worker_id: str, count: int, first_seq: int) -> list[Claimed] | None:
        """Claim up to `count` jobs; None when this worker holds no live lease."""
        k = self.keys
        flat = await self.scripts.claim(
            keys=[k.queue, k.processing, k.workers], args=[worker_id, count, first_seq]
        )
        if flat is None:
            return None
        return [Claimed(as_text(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)]

    async def wait_for_jobs(self, timeout: float) -> bool:
        """Block until the queue is non-empty or `timeout` passes; take nothing.

        BLMOVE from the list's right end back onto its right end changes nothing, but it blocks
        like BRPOP, so an idle worker costs no polling and wakes at once on LPUSH.
        """
        moved = await self.client.blmove(
            self.keys.queue, self.keys.queue, timeout, src="RIGHT", dest="RIGHT"
        )
        return moved is not None

    async def apply(self, ops: list[Op], result_ttl: int) -> list[int]:
        """Apply state changes in one round trip; per op 1 (claim held), 0 (lost) or 2 (a
        "start" whose job has a cancel request)."""
        keys, args = self._apply_args(ops, result_ttl)
        return [int(h) for h in await self.scripts.apply(keys=keys, args=args)]

    def apply_command(self, ops: list[Op], result_ttl: int) -> bytes:
        """The same as `apply`, as one packed EVALSHA for a connection of one's own (the
        reply is the list `apply` returns, as integers)."""
        keys, args = self._apply_args(ops, result_ttl)
        return _pack("EVALSHA", self.scripts.apply.sha, len(keys), *keys, *args)

    def apply_load_command(self) -> bytes:
        """SCRIPT LOAD of the apply script, for a connection whose server lost it."""
        return _pack("SCRIPT", "LOAD", self.scripts.apply.script)

    def _apply_args(self, ops: list[Op], result_ttl: int) -> tuple[list[str], list[bytes | int]]:
        k = self.keys
        keys = [k.processing, k.queue, k.delayed, k.dead, k.redeliveries]
        index: dict[str, int] = {}

        def slot(key: str) -> int:
            position = index.get(key)
            if position is None:
                keys.append(key)
                position = index[key] = len(keys)
            return position

        encoded = []
        for op in ops:
            status = slot(k.job(op.job_id)) if op.job_id else 1
            unique = slot(k.unique(op.unique_key)) if op.unique_key else 0
            cancel = slot(k.cancel(op.job_id)) if op.cancellable and op.job_id else 0
            encoded.append(
                [op.kind, op.token, status, op.job_id, op.arg, op.score, op.status, unique, cancel]
            )
        # Payloads and results may hold lone surrogates (valid JSON, not valid UTF-8): pass them
        # through as bytes; cjson copies string bytes without checking them.
        batch = _encode_batch(encoded)
        return keys, [result_ttl, batch.encode("utf-8", "surrogatepass")]

    async def reap(self, crash_budget: int, full_scan: bool) -> tuple[int, int, int]:
        """Take back dead workers' jobs: (re-delivered, dead-lettered, workers removed)."""
        k = self.keys
        result = await self.scripts.reap(
            keys=[
                k.workers,
                k.workers_info,
                k.processing,
                k.queue,
                k.redeliveries,
                k.dead,
            ],
            args=[crash_budget, "1" if full_scan else "0", unix_now()],
        )
        return int(result[0]), int(result[1]), int(result[2])

    async def claims_of(self, worker_id: str) -> dict[str, bytes]:
        """This worker's claims in the processing hash: token -> job text (a scan)."""
        out: dict[str, bytes] = {}
        async for token, raw in self.client.hscan_iter(
            self.keys.processing, match=f"{worker_id}|*", count=1000
        ):
            out[as_text(token)] = raw
        return out

    async def promote(self, limit: int = 500) -> tuple[int, float | None]:
        """Move due delayed jobs onto the queue: (how many moved, seconds until the next is due,
        None when none waits)."""
        k = self.keys
        moved, next_ms = await self.scripts.promote(keys=[k.delayed, k.queue], args=[limit])
        return int(moved), (None if int(next_ms) < 0 else int(next_ms) / 1000)

    async def stats(self) -> QueueStats:
        k = self.keys
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(k.queue)
            pipe.hlen(k.processing)
            pipe.zcard(k.delayed)
            pipe.llen(k.dead)
            pipe.zcard(k.workers)
            pipe.lindex(k.queue, -1)
            queued, inflight, delayed, dead, workers, oldest = await pipe.execute()
        return QueueStats(queued, inflight, delayed, dead, workers, _age(oldest))

    async def workers(self) -> dict[str, dict[str, Any]]:
        """Live workers' info, by worker id."""
        raw = await self.client.hgetall(self.keys.workers_info)
        out: dict[str, dict[str, Any]] = {}
        for wid, info in raw.items():
            try:
                out[as_text(wid)] = json.loads(info)
            except ValueError:
                out[as_text(wid)] = {}
        return out


def _pack(*parts: Any) -> bytes:
    """One command in the Redis protocol (hiredis's type stub admits one-element tuples only)."""
    packed: bytes = hiredis.pack_command(parts)
    return packed


def _age(raw: bytes | None) -> float:
    """Seconds since the job `raw` was enqueued, when it says so."""
    if raw is None:
        return 0.0
    try:
        enqueued = json.loads(raw).get("enqueued_at")
    except (ValueError, AttributeError):
        return 0.0
    if isinstance(enqueued, int | float) and not isinstance(enqueued, bool):
        return max(0.0, time.time() - float(enqueued))
    return 0.0
