"""Fleet-wide limits per workflow: starts per window and jobs running at once, kept in Redis.

One Lua script (`lua/ratelimit_acquire-3.lua`) decides and records each admission, so the limits
hold exactly however many worker replicas race for them. See docs/ratelimits.md.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.limits import Limits
from workflow_worker.engine.scripts import lua_source

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["RateLimiter"]


class RateLimiter:
    """Acquire and release per-workflow admissions for one queue's jobs, fleet-wide."""

    def __init__(
        self,
        client: Any,
        queue_name: str,
        limits: dict[str, Limits],
        *,
        check_processing: bool = True,
        full_wait_seconds: float = 1.0,
        jitter: float = 0.1,
    ) -> None:
        """`check_processing`: a holder whose claim token left the queue's processing hash
        (finished, requeued or reaped) frees its slot before its expiry. `full_wait_seconds`:
        the longest wait answered while a concurrency limit is full (a slot may free any time).
        `jitter`: waits are stretched by up to this fraction so a burst of denied jobs does not
        come back at the same instant."""
        keys = QueueKeys.for_queue(queue_name)
        self.limits = dict(limits)
        self._prefix = keys.ratelimit_prefix
        self._processing = keys.processing
        self._check = "1" if check_processing else "0"
        self._full_wait_ms = max(1, round(full_wait_seconds * 1000))
        self._jitter = jitter
        self._acquire: AsyncScript = client.register_script(lua_source("ratelimit_acquire"))
        self._client = client

    def keys(self, workflow: str) -> tuple[str, str]:
        """(starts sorted set, holders sorted set) of one workflow."""
        return self._prefix + workflow + ":starts", self._prefix + workflow + ":running"

    async def acquire(self, workflow: str, token: str, hold_seconds: float) -> float:
        """0.0 if the job may start now (then `token` holds a slot when `workflow` has a
        concurrency limit, until `release` or `hold_seconds`), else seconds to wait before
        asking again. Workflows without limits answer 0.0 without calling Redis."""
        limits = self.limits.get(workflow)
        if limits is None:
            return 0.0
        if not 0 < hold_seconds < math.inf:
            raise ValueError(f"hold_seconds must be positive and finite, got {hold_seconds!r}")
        args: list[Any] = [
            token,
            limits.concurrent or 0,
            math.ceil(hold_seconds * 1000),
            self._check,
            self._full_wait_ms,
        ]
        for window_ms, limit in limits.windows():
            args += [window_ms, limit]
        starts, running = self.keys(workflow)
        wait_ms = int(await self._acquire(keys=[starts, running, self._processing], args=args))
        if wait_ms <= 0:
            return 0.0
        return wait_ms / 1000 * (1 + self._jitter * random.random())

    async def release(self, workflow: str, token: str) -> None:
        """Give back the concurrency slot `token` holds (a no-op without a concurrency limit)."""
        limits = self.limits.get(workflow)
        if limits is None or limits.concurrent is None:
            return
        await self._client.zrem(self.keys(workflow)[1], token)
