"""Fleet-wide limits per workflow: starts per window and jobs running at once, kept in Redis.

One Lua script (`lua/ratelimit_acquire-3.lua`) decides and records each admission, so the limits
hold exactly however many worker replicas race for them. See docs/ratelimits.md.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from worker.keys import QueueKeys
from worker.scripts import lua_source
from worker.settings import ConfigError

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["Limits", "RateLimiter", "parse_rate_limits"]

VARIABLE = "WORKER_RATE_LIMITS"
MAX_LIMIT = 1_000_000
_WINDOWS_MS = {"per_second": 1_000, "per_minute": 60_000, "per_hour": 3_600_000}
_SHORTHAND = {"s": "per_second", "m": "per_minute", "h": "per_hour"}
_FIELDS = (*_WINDOWS_MS, "concurrent")
_FORMAT = (
    'a JSON object {"<workflow>": {"per_second"|"per_minute"|"per_hour"|"concurrent": '
    f'integer 1..{MAX_LIMIT}, ...}} or "<N>/s"|"<N>/m"|"<N>/h"}}'
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one workflow; None means no limit of that kind."""

    per_second: int | None = None
    per_minute: int | None = None
    per_hour: int | None = None
    concurrent: int | None = None

    def windows(self) -> list[tuple[int, int]]:
        """(window length in ms, starts allowed in it) for every rate limit set."""
        out = []
        for name, window_ms in _WINDOWS_MS.items():
            limit = getattr(self, name)
            if limit is not None:
                out.append((window_ms, limit))
        return out


def parse_rate_limits(text: str) -> dict[str, Limits]:
    """Parse `WORKER_RATE_LIMITS`; empty means no limits. Raises ConfigError naming the variable."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(VARIABLE, text, _FORMAT) from None
    if not isinstance(data, dict):
        raise ConfigError(VARIABLE, text, _FORMAT)
    return {_workflow_name(text, name): _limits(text, name, spec) for name, spec in data.items()}


def _workflow_name(text: str, name: str) -> str:
    if not name.strip():
        raise ConfigError(VARIABLE, text, "non-empty workflow names in " + _FORMAT)
    return name


def _limits(text: str, workflow: str, spec: Any) -> Limits:
    if isinstance(spec, str):
        return _shorthand(text, workflow, spec)
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(VARIABLE, text, f"{_FORMAT}; {workflow!r} has {spec!r}")
    unknown = sorted(set(spec) - set(_FIELDS))
    if unknown:
        raise ConfigError(VARIABLE, text, f"only {', '.join(_FIELDS)}; {workflow!r} has {unknown}")
    return Limits(**{key: _count(text, workflow, key, value) for key, value in spec.items()})


def _shorthand(text: str, workflow: str, spec: str) -> Limits:
    number, _, unit = spec.strip().partition("/")
    field = _SHORTHAND.get(unit.strip().lower())
    if field is None or not number.strip().isdigit():
        raise ConfigError(VARIABLE, text, f"{_FORMAT}; {workflow!r} has {spec!r}")
    return Limits(**{field: _count(text, workflow, field, int(number))})


def _count(text: str, workflow: str, key: str, value: Any) -> int:
    # bool is an int in Python, but `true` is never a meaningful limit.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        allowed = f"an integer from 1 to {MAX_LIMIT} for {workflow!r} {key}, got {value!r}"
        raise ConfigError(VARIABLE, text, allowed)
    return value


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
