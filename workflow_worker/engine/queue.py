"""`RedisQueue`: the reliable-queue operations of one queue, each one Redis round trip."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import hiredis

from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.scripts import Scripts

if TYPE_CHECKING:
    from workflow_worker.engine.groups import MemberEnd

__all__ = [
    "HEAD_BYTES",
    "Claimed",
    "Op",
    "QueueStats",
    "ReapOrder",
    "RedisQueue",
    "as_text",
    "unix_now",
]

# json.dumps with options builds a new encoder per call; these run once per batch or job.
_encode_batch = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# What the worker reads of a message over the size limit: enough to find its id.
HEAD_BYTES = 2048


def unix_now() -> str:
    """Unix time as text: what status records and dead-letter entries store."""
    return f"{time.time():.3f}"


def as_text(value: bytes | str) -> str:
    """Redis replies as text (bytes decoded as UTF-8, invalid bytes replaced)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed message: its claim token, its text exactly as the producer wrote it (only
    the first `HEAD_BYTES` when `size` is over the limit the claim was made with), its size."""

    token: str
    raw: bytes
    size: int = -1

    @property
    def whole(self) -> bool:
        """False when `raw` is only the head of a text over the size limit."""
        return self.size < 0 or len(self.raw) == self.size


@dataclass(slots=True)
class Op:
    """One conditional state change, applied by `apply-7.lua` (see its header for the kinds).

    `delay_ms` is relative: the script adds it to the server's clock. `extra_s` keeps the
    job's status record and unique lock that much longer than the result TTL (a job's timeout
    while it runs, its delay while it waits).
    """

    kind: str
    token: str
    job_id: str = ""
    arg: str = ""
    delay_ms: int = 0
    status: dict[str, str] = field(default_factory=dict)
    unique_key: str = ""
    cancellable: bool = False
    extra_s: int = 0
    # Set only on the final op of a group member (engine/groups.py).
    member: MemberEnd | None = None


@dataclass(frozen=True, slots=True)
class ReapOrder:
    """How to take back one orphaned claim (see `reap-6.lua`): mode 0 counts it against the
    crash budget and requeues `text`, 1 dead-letters it now, 2 also moves its text to the
    blobs hash."""

    token: str
    job_id: str
    text: str
    entry: str
    mode: int
    dead: dict[str, str]
    requeued: dict[str, str]
    unique_key: str = ""
    cancellable: bool = False
    # Set only for a group member (engine/groups.py): its dead letter ends it in its group.
    member: MemberEnd | None = None


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


class _KeyIndex:
    """KEYS for a script: the fixed ones first, then per-job keys referenced by 1-based index."""

    __slots__ = ("_index", "keys")

    def __init__(self, fixed: list[str]) -> None:
        self.keys = list(fixed)
        self._index: dict[str, int] = {}

    def slot(self, key: str) -> int:
        position = self._index.get(key)
        if position is None:
            self.keys.append(key)
            position = self._index[key] = len(self.keys)
        return position


class RedisQueue:
    """Claim, wait, apply, reap, promote and inspect one queue."""

    def __init__(
        self,
        client: Any,
        queue: str,
        scripts: Scripts | None = None,
        *,
        recent_jobs: int = 10_000,
    ) -> None:
        self.client = client
        self.keys = QueueKeys.for_queue(queue)
        self.scripts = scripts or Scripts.register(client)
        # Size of the recent-jobs index `apply` keeps (WORKER_RECENT_JOBS; 0: none).
        self.recent_jobs = recent_jobs

    async def register(self, worker_id: str, lease_ms: int, info: dict[str, Any]) -> None:
        await self._heartbeat(worker_id, lease_ms, info, register=True)

    async def renew(self, worker_id: str, lease_ms: int, info: dict[str, Any]) -> bool:
        """Renew the lease; False when it was gone (this worker was presumed dead)."""
        return await self._heartbeat(worker_id, lease_ms, info, register=False)

    def heartbeat_args(
        self, worker_id: str, lease_ms: int, info: dict[str, Any], *, register: bool
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of `heartbeat-2.lua` (the liveness thread sends it on a client of
        its own)."""
        k = self.keys
        return [k.workers, k.workers_info, k.pulse], [
            worker_id,
            lease_ms,
            json.dumps(info),
            "1" if register else "0",
        ]

    async def _heartbeat(
        self, worker_id: str, lease_ms: int, info: dict[str, Any], *, register: bool
    ) -> bool:
        keys, args = self.heartbeat_args(worker_id, lease_ms, info, register=register)
        return bool(await self.scripts.heartbeat(keys=keys, args=args))

    async def unregister(self, worker_id: str) -> None:
        k = self.keys
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(k.workers, worker_id)
            pipe.hdel(k.workers_info, worker_id)
            await pipe.execute()

    async def claim(
        self, worker_id: str, count: int, call: int, size_limit: int
    ) -> list[Claimed] | None:
        """Claim up to `count` jobs in call number `call` (sent again after a lost reply, the
        same call answers the same jobs); None when this worker holds no live lease."""
        k = self.keys
        flat = await self.scripts.claim(
            keys=[k.queue, k.processing, k.workers],
            args=[worker_id, count, call, size_limit, HEAD_BYTES],
        )
        if flat is None:
            return None
        return _claimed(flat, 0)

    async def wait_for_jobs(self, timeout: float) -> bool:
        """Block until the queue is non-empty or `timeout` passes; take nothing.

        BLMOVE from the list's right end back onto its right end changes nothing, but it blocks
        like BRPOP, so an idle worker costs no polling and wakes at once on LPUSH.
        """
        moved = await self.client.blmove(
            self.keys.queue, self.keys.queue, timeout, src="RIGHT", dest="RIGHT"
        )
        return moved is not None

    async def apply(self, ops: list[Op], result_ttl: int, *, infer: bool = False) -> list[int]:
        """Apply state changes in one round trip; per op 1 (claim held), 0 (lost) or 2 (a
        "start" whose job has a cancel request). `infer`: see `apply-7.lua` (the batcher's
        sends, never the audit's)."""
        keys, args = self._apply_args(ops, result_ttl, infer)
        return [int(h) for h in await self.scripts.apply(keys=keys, args=args)]

    def apply_command(self, ops: list[Op], result_ttl: int) -> bytes:
        """The batcher's `apply`, as one packed EVALSHA for a connection of one's own (the
        reply is the list `apply` returns, as integers)."""
        keys, args = self._apply_args(ops, result_ttl, True)
        return _pack("EVALSHA", self.scripts.apply.sha, len(keys), *keys, *args)

    def apply_load_command(self) -> bytes:
        """SCRIPT LOAD of the apply script, for a connection whose server lost it."""
        return _pack("SCRIPT", "LOAD", self.scripts.apply.script)

    def _apply_args(
        self, ops: list[Op], result_ttl: int, infer: bool
    ) -> tuple[list[str], list[bytes | int | str]]:
        k = self.keys
        index = _KeyIndex(
            [k.processing, k.queue, k.delayed, k.dead, k.redeliveries, k.workers, k.dead_blobs]
        )
        slot = index.slot
        encoded = []
        for op in ops:
            status = slot(k.job(op.job_id)) if op.job_id else 0
            unique = slot(k.unique(op.unique_key)) if op.unique_key else 0
            cancel = slot(k.cancel(op.job_id)) if op.cancellable and op.job_id else 0
            encoded.append(
                [
                    op.kind,
                    op.token,
                    status,
                    op.job_id,
                    op.arg,
                    op.delay_ms,
                    op.status,
                    unique,
                    cancel,
                    op.extra_s,
                ]
            )
            if op.member is not None:
                encoded[-1].append(op.member.lua(slot, k))
        # Payloads and results may hold lone surrogates (valid JSON, not valid UTF-8): pass them
        # through as bytes; cjson copies string bytes without checking them.
        batch = _encode_batch(encoded)
        recent = slot(k.recent) if self.recent_jobs else 0
        return index.keys, [
            result_ttl,
            batch.encode("utf-8", "surrogatepass"),
            "1" if infer else "0",
            recent,
            self.recent_jobs,
        ]

    async def orphans(
        self, full_scan: bool, limit: int, size_limit: int, lease_ms: int
    ) -> tuple[int, list[Claimed]]:
        """Claims of workers without a live lease (expired leases are removed first): (workers
        removed, up to `limit` orphaned claims). See `orphans-4.lua` for a fleet-wide stall."""
        k = self.keys
        flat = await self.scripts.orphans(
            keys=[k.workers, k.workers_info, k.processing, k.pulse],
            args=["1" if full_scan else "0", limit, size_limit, HEAD_BYTES, lease_ms],
        )
        return int(flat[0]), _claimed(flat, 1)

    async def reap(self, orders: list[ReapOrder], result_ttl: int, crash_budget: int) -> list[int]:
        """Take back orphaned claims: per order 0 (left alone), 1 (requeued), 2 (dead-lettered)."""
        k = self.keys
        index = _KeyIndex([k.processing, k.queue, k.dead, k.redeliveries, k.workers, k.dead_blobs])
        encoded = []
        for o in orders:
            status = index.slot(k.job(o.job_id)) if o.job_id else 0
            unique = index.slot(k.unique(o.unique_key)) if o.unique_key else 0
            cancel = index.slot(k.cancel(o.job_id)) if o.cancellable and o.job_id else 0
            encoded.append(
                [
                    o.token,
                    o.job_id,
                    status,
                    unique,
                    cancel,
                    o.text,
                    o.entry,
                    o.mode,
                    o.dead,
                    o.requeued,
                ]
            )
            if o.member is not None:
                encoded[-1].append(o.member.lua(index.slot, k))
        batch = _encode_batch(encoded).encode("utf-8", "surrogatepass")
        result = await self.scripts.reap(keys=index.keys, args=[result_ttl, crash_budget, batch])
        return [int(r) for r in result]

    async def claims_of(self, worker_id: str, size_limit: int) -> list[Claimed]:
        """This worker's claims in the processing hash (texts over `size_limit` cut to their
        head)."""
        flat = await self.scripts.claims_of(
            keys=[self.keys.processing], args=[worker_id, size_limit, HEAD_BYTES]
        )
        return _claimed(flat, 0)

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
            pipe.time()
            queued, inflight, delayed, dead, workers, oldest, now = await pipe.execute()
        age = _age(oldest, now[0] + now[1] / 1e6)
        return QueueStats(queued, inflight, delayed, dead, workers, age)

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


def _claimed(flat: list[Any], start: int) -> list[Claimed]:
    return [
        Claimed(as_text(flat[i]), flat[i + 1], int(flat[i + 2])) for i in range(start, len(flat), 3)
    ]


def _pack(*parts: Any) -> bytes:
    """One command in the Redis protocol (hiredis's type stub admits one-element tuples only)."""
    packed: bytes = hiredis.pack_command(parts)
    return packed


def _age(raw: bytes | None, now: float) -> float:
    """Seconds since the job `raw` was enqueued, when it says so, on the server's clock `now`
    (a producer's clock may be off; the server's is the one every worker shares)."""
    if raw is None:
        return 0.0
    try:
        enqueued = json.loads(raw).get("enqueued_at")
    except (ValueError, AttributeError):
        return 0.0
    if isinstance(enqueued, int | float) and not isinstance(enqueued, bool):
        return max(0.0, now - float(enqueued))
    return 0.0
