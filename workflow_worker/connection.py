"""Build a Redis client from the settings: standalone, Sentinel or Cluster; AUTH and TLS."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel as SyncSentinel

from workflow_worker.settings import Settings

__all__ = ["SOCKET_TIMEOUT", "connect", "connect_sync"]

# Socket timeout for ordinary commands; blocking waits use a shorter server-side timeout.
SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0


def _common(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "health_check_interval": 15,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=2),
        "decode_responses": False,
        # redis-py raises once a pool holds 100 connections; every running job may use the
        # shared client (ctx.redis), so the pool must be able to serve all of them at once.
        "max_connections": max(100, settings.concurrency * 2 + 20),
    }
    if settings.redis_username is not None:
        kwargs["username"] = settings.redis_username
    if settings.redis_password is not None:
        kwargs["password"] = settings.redis_password
    if settings.redis_tls_ca_file:
        kwargs["ssl_ca_certs"] = settings.redis_tls_ca_file
    if settings.redis_tls_cert_file:
        kwargs["ssl_certfile"] = settings.redis_tls_cert_file
    if settings.redis_tls_key_file:
        kwargs["ssl_keyfile"] = settings.redis_tls_key_file
    return kwargs


def _sentinel_args(settings: Settings) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    parts = urlsplit(settings.redis_url)
    host, port = parts.hostname or "localhost", parts.port or 26379
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": CONNECT_TIMEOUT}
    if parts.password:
        sentinel_kwargs["password"] = parts.password
    return [(host, port)], sentinel_kwargs


def connect(settings: Settings) -> Any:
    """A redis-py asyncio client for `settings` (not yet connected)."""
    kwargs = _common(settings)
    if settings.redis_mode == "cluster":
        kwargs.pop("health_check_interval")
        return RedisCluster.from_url(settings.redis_url, **kwargs)
    if settings.redis_mode == "sentinel":
        hosts, sentinel_kwargs = _sentinel_args(settings)
        sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_kwargs, **kwargs)  # type: ignore[no-untyped-call]
        return sentinel.master_for(settings.redis_sentinel_master)
    return aioredis.Redis.from_url(settings.redis_url, **kwargs)


def connect_sync(settings: Settings) -> Any:
    """The blocking redis-py client for the same settings (scripts, locust, the CLI)."""
    kwargs = _common(settings)
    if settings.redis_mode == "cluster":
        kwargs.pop("health_check_interval")
        return SyncRedisCluster.from_url(settings.redis_url, **kwargs)
    if settings.redis_mode == "sentinel":
        hosts, sentinel_kwargs = _sentinel_args(settings)
        sentinel = SyncSentinel(hosts, sentinel_kwargs=sentinel_kwargs, **kwargs)  # type: ignore[no-untyped-call]
        return sentinel.master_for(settings.redis_sentinel_master)  # type: ignore[no-untyped-call]
    return redis.Redis.from_url(settings.redis_url, **kwargs)
