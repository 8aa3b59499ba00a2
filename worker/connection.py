"""Build a Redis client from the settings: standalone, Sentinel or Cluster; AUTH and TLS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import hiredis
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.retry import Retry
from redis.sentinel import Sentinel as SyncSentinel

from worker.settings import Settings

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["Dedicated", "connect", "connect_sync"]

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


class Dedicated:
    """One connection of a client's pool, held by a single sequential caller (the batcher).

    A lone job's acknowledgement is one command. Through the client, each command also checks a
    connection out of the pool and back, runs the retry wrapper and the client's event hooks,
    and wraps its write in `asyncio.wait_for`, which starts a task: on a small machine about a
    third of the command's CPU. Here hiredis packs the command, one `asyncio.timeout` bounds the
    whole exchange (SOCKET_TIMEOUT), and the connection still connects, authenticates, resolves
    the Sentinel master and health-checks itself. A Cluster client has no single pool: `run`
    then goes through the client as usual.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._pool = client.connection_pool if isinstance(client, aioredis.Redis) else None
        self._conn: Any = None
        self._timeout: float | None = SOCKET_TIMEOUT

    async def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """EVALSHA `script` (loading it first if the server lost it), like calling it."""
        if self._pool is None:
            return await script(keys=keys, args=args, client=self._client)
        command = hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
        try:
            async with asyncio.timeout(self._timeout):
                return await self._exchange(command, script)
        except ResponseError:
            raise  # a whole reply was read: the connection is fine
        except BaseException:
            # A reply may be half read or still on its way: never reuse the connection.
            await self._drop()
            raise

    async def _exchange(self, command: bytes, script: AsyncScript) -> Any:
        conn = await self._usable()
        try:
            await conn.send_packed_command(command)
        except (RedisConnectionError, OSError):
            # Nothing was applied through a connection that could not even send: one more try
            # on a fresh connection.
            await self._drop()
            conn = await self._connection()
            await conn.send_packed_command(command)
        try:
            return await conn.read_response()
        except NoScriptError:
            # SCRIPT LOAD then EVALSHA, as the client does: the ACL grants no EVAL.
            await conn.send_command("SCRIPT", "LOAD", script.script)
            await conn.read_response()
            await conn.send_packed_command(command)
            return await conn.read_response()

    async def _usable(self) -> Any:
        """The held connection, replaced first if the server closed it while it idled (what
        the pool checks on every checkout)."""
        conn = await self._connection()
        try:
            if not conn.is_connected or not await conn.can_read():
                return conn
        except (RedisConnectionError, OSError):
            pass
        await self._drop()
        return await self._connection()

    async def _connection(self) -> Any:
        if self._conn is None:
            assert self._pool is not None
            conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
            # `run` bounds each exchange itself; the connection's own timeout goes back with it.
            self._timeout, conn.socket_timeout = conn.socket_timeout, None
            self._conn = conn
        return self._conn

    def _give_back(self, conn: Any) -> None:
        conn.socket_timeout = self._timeout

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or self._pool is None:
            return
        self._give_back(conn)
        with contextlib.suppress(Exception):
            await conn.disconnect()
        with contextlib.suppress(Exception):
            await self._pool.release(conn)

    async def close(self) -> None:
        """Give the connection back to the pool (connected, for reuse)."""
        conn, self._conn = self._conn, None
        if conn is not None and self._pool is not None:
            self._give_back(conn)
            with contextlib.suppress(Exception):
                await self._pool.release(conn)
