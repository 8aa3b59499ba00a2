"""Build a Redis client from the settings: standalone, Sentinel or Cluster; AUTH and TLS."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel as SyncSentinel
from redis.sentinel import SentinelConnectionPool as SyncSentinelConnectionPool

from workflow_worker.settings import Settings

__all__ = ["SOCKET_TIMEOUT", "connect", "connect_sync"]

# Socket timeout for ordinary commands; blocking waits use a shorter server-side timeout.
SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0


def _tls(settings: Settings) -> dict[str, Any]:
    """Trust store and client certificate, for every connection of a rediss:// URL."""
    kwargs: dict[str, Any] = {}
    if settings.redis_tls_ca_file:
        kwargs["ssl_ca_certs"] = settings.redis_tls_ca_file
    if settings.redis_tls_cert_file:
        kwargs["ssl_certfile"] = settings.redis_tls_cert_file
    if settings.redis_tls_key_file:
        kwargs["ssl_keyfile"] = settings.redis_tls_key_file
    return kwargs


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
    return {**kwargs, **_tls(settings)}


def _sentinel_args(
    settings: Settings, kwargs: dict[str, Any]
) -> tuple[list[tuple[str, int]], dict[str, Any], dict[str, Any]]:
    """Sentinel addresses, the Sentinel connections' arguments and the primary's.

    The URL names a Sentinel: its scheme chooses TLS for the Sentinels and the primary alike (as
    KEDA's `enableTLS` does), its path is the primary's database, and its credentials are the
    Sentinel's unless REDIS_SENTINEL_USERNAME/PASSWORD are set. REDIS_USERNAME/PASSWORD are the
    primary's.
    """
    parts = urlsplit(settings.redis_url)
    host, port = parts.hostname or "localhost", parts.port or 26379
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": CONNECT_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
    }
    username = settings.redis_sentinel_username or (parts.username and unquote(parts.username))
    password = settings.redis_sentinel_password or (parts.password and unquote(parts.password))
    if username:
        sentinel_kwargs["username"] = username
    if password:
        sentinel_kwargs["password"] = password
    primary = {**kwargs, "db": int(parts.path.strip("/") or 0)}
    if parts.scheme == "rediss":
        sentinel_kwargs.update(ssl=True, **_tls(settings))
        primary["ssl"] = True
    return [(host, port)], sentinel_kwargs, primary


class _OwningSentinelPool(SentinelConnectionPool):
    """The primary's pool; closing it also closes the Sentinel clients, whose only user it is."""

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.sentinel_manager.aclose()


class _OwningSyncSentinelPool(SyncSentinelConnectionPool):
    """The blocking form of `_OwningSentinelPool`."""

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.sentinel_manager.close()


def connect(settings: Settings) -> Any:
    """A redis-py asyncio client for `settings` (not yet connected)."""
    kwargs = _common(settings)
    if settings.redis_mode == "cluster":
        kwargs.pop("health_check_interval")
        return RedisCluster.from_url(settings.redis_url, **kwargs)
    if settings.redis_mode == "sentinel":
        hosts, sentinel_kwargs, primary = _sentinel_args(settings, kwargs)
        sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_kwargs, **primary)  # type: ignore[no-untyped-call]
        return sentinel.master_for(
            settings.redis_sentinel_master, connection_pool_class=_OwningSentinelPool
        )
    return aioredis.Redis.from_url(settings.redis_url, **kwargs)


def connect_sync(settings: Settings) -> Any:
    """The blocking redis-py client for the same settings (scripts, locust, the CLI)."""
    kwargs = _common(settings)
    if settings.redis_mode == "cluster":
        kwargs.pop("health_check_interval")
        return SyncRedisCluster.from_url(settings.redis_url, **kwargs)
    if settings.redis_mode == "sentinel":
        hosts, sentinel_kwargs, primary = _sentinel_args(settings, kwargs)
        sentinel = SyncSentinel(hosts, sentinel_kwargs=sentinel_kwargs, **primary)  # type: ignore[no-untyped-call]
        return sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.redis_sentinel_master, connection_pool_class=_OwningSyncSentinelPool
        )
    return redis.Redis.from_url(settings.redis_url, **kwargs)
