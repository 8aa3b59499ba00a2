"""What the worker needs of its Redis server, read and checked at start-up.

- Redis 7.0 or newer (Valkey 7.2 or newer): the engine's scripts declare flags (`allow-oom`), so a
  full Redis still takes acknowledgements and drains.
- No eviction of the worker's keys: with `maxmemory` set and any policy but `noeviction`, Redis
  may drop queued jobs (`allkeys-*`) or status records and unique locks (`volatile-*`), and the
  delivery promises no longer hold. The worker refuses to start unless the operator accepts that
  (`WORKER_ALLOW_EVICTION=1`).
- Persistence (`appendonly`, `appendfsync`) is only reported, on `/readyz` and in the
  `workflow_redis_info` metric: it decides what survives a Redis restart (docs/guarantees.md).
  `appendfsync` needs `CONFIG GET`, which least-privilege ACL users lack; it is then "unknown".
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import NoPermissionError, ResponseError

from workflow_worker.errors import ConfigError
from workflow_worker.settings import Settings

__all__ = ["ServerFacts", "check", "read_facts"]

log = logging.getLogger("workflow_worker")
MIN_VERSION = (7, 0)
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What was read of the server (every node's, for a Cluster: the first that differs)."""

    version: str
    maxmemory: int
    maxmemory_policy: str
    appendonly: str
    appendfsync: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _nodes(reply: Any) -> list[dict[str, Any]]:
    """INFO replies of every node: a Cluster client answers one dict per node."""
    if isinstance(reply, dict) and reply and all(isinstance(v, dict) for v in reply.values()):
        return list(reply.values())
    return [reply]


async def read_facts(client: Any, *, config: bool = True) -> ServerFacts:
    """Read version, memory policy and persistence; `config=False` skips CONFIG GET (asked
    once per process: a refusal is written to the server's ACL log)."""
    facts = []
    for info in _nodes(await client.info()):
        facts.append(
            ServerFacts(
                version=str(info.get("redis_version", "0")),
                maxmemory=int(info.get("maxmemory", 0) or 0),
                maxmemory_policy=str(info.get("maxmemory_policy", UNKNOWN)),
                appendonly="yes" if int(info.get("aof_enabled", 0) or 0) else "no",
                appendfsync=UNKNOWN,
            )
        )
    worst = next((f for f in facts if _unsafe(f)), facts[0])
    fsync = UNKNOWN
    if config:
        fsync = await _appendfsync(client)
    return ServerFacts(
        worst.version, worst.maxmemory, worst.maxmemory_policy, worst.appendonly, fsync
    )


async def _appendfsync(client: Any) -> str:
    try:
        reply = await client.config_get("appendfsync")
    except (NoPermissionError, ResponseError) as exc:
        log.info("cannot read appendfsync (CONFIG GET refused): %s", exc)
        return UNKNOWN
    if isinstance(reply, dict):
        for nested in _nodes(reply):
            for key, value in nested.items():
                if _text(key) == "appendfsync" and value:
                    return _text(value)
    return UNKNOWN


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _unsafe(facts: ServerFacts) -> bool:
    return facts.maxmemory > 0 and facts.maxmemory_policy != "noeviction"


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check(facts: ServerFacts, settings: Settings) -> None:
    """Raise `ConfigError` naming what to change when the server cannot keep the promises."""
    if _version(facts.version) < MIN_VERSION:
        raise ConfigError(
            "REDIS_URL",
            _redacted(settings.redis_url),
            f"a server running Redis 7.0 or newer (or Valkey 7.2 or newer); it runs "
            f"{facts.version}",
        )
    if _unsafe(facts) and not settings.allow_eviction:
        what = (
            "queued jobs"
            if facts.maxmemory_policy.startswith("allkeys")
            else "status records and unique locks"
        )
        raise ConfigError(
            "maxmemory-policy (Redis setting)",
            facts.maxmemory_policy,
            f"noeviction: with maxmemory set and this policy Redis may evict {what}; set "
            "maxmemory-policy noeviction on the server (or WORKER_ALLOW_EVICTION=1 to run "
            "anyway and accept the loss)",
        )
    if _unsafe(facts):
        log.warning(
            "Redis maxmemory-policy %s may evict this worker's keys; running anyway "
            "(WORKER_ALLOW_EVICTION=1)",
            facts.maxmemory_policy,
        )


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
