"""A lane is one queue a worker consumes, with its own keys, batcher and rate limiter.

A worker consumes its lanes in priority order (WORKER_QUEUES, highest first). Against
starvation, one claim round in WORKER_QUEUE_FAIRNESS serves the lanes lowest first, so a busy
high-priority queue leaves the lower ones about that share of the claims.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from redis.exceptions import RedisError

from workflow_worker.engine.batcher import Batcher
from workflow_worker.engine.queue import RedisQueue
from workflow_worker.engine.ratelimit import RateLimiter

__all__ = ["Lane", "claim_order", "wait_for_any"]


@dataclass(slots=True)
class Lane:
    """One consumed queue."""

    name: str
    queue: RedisQueue
    batcher: Batcher
    limiter: RateLimiter | None = None
    active: int = 0

    def running_jobs(self) -> int:
        """How many of this lane's jobs hold a slot (the active gauge reads it at scrape)."""
        return self.active


def claim_order(lanes: list[Lane], claim_round: int, fairness: int) -> list[Lane]:
    """Lanes in priority order, reversed on every `fairness`-th round (0: never)."""
    if fairness and len(lanes) > 1 and claim_round % fairness == 0:
        return lanes[::-1]
    return lanes


async def wait_for_any(lanes: list[Lane], timeout: float) -> bool:
    """Block until any lane's queue has a job (True) or `timeout` passes (False), taking nothing.

    One lane blocks on its list directly. Several block in parallel, and the losers are
    cancelled; that drops their connections, which is only paid when an idle worker wakes.
    """
    if len(lanes) == 1:
        return await lanes[0].queue.wait_for_jobs(timeout)
    waits = [asyncio.ensure_future(lane.queue.wait_for_jobs(timeout)) for lane in lanes]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        # Results in lane order, so a failed wait raises like the single-lane case does.
        return any([w.result() for w in waits if w in done])
    finally:
        for wait in waits:
            if not wait.done():
                wait.cancel()
        for wait in waits:
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await wait
