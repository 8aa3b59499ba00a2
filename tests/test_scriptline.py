"""ScriptLine: commands on a taken-over connection reach their callbacks in order, and every way
a connection can fail ends each waiting command exactly once.

Every scenario runs on the standard asyncio loop and on uvloop (the worker's loop): their
transports are different classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import hiredis
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tests.conftest import Runner
from workflow_worker.engine.scriptline import Reply, ScriptLine


def cmd(*parts: str | int) -> bytes:
    packed: bytes = hiredis.pack_command(parts)  # type: ignore[arg-type]
    return packed


@contextlib.asynccontextmanager
async def client_with_line(
    url: str, timeout: float = 10.0
) -> AsyncIterator[tuple[aioredis.Redis, ScriptLine]]:
    """A client and an open line on its pool, both closed however the scenario ends (a
    connection left open can hang uvloop's shutdown instead of letting the test fail)."""
    client = aioredis.Redis.from_url(url)
    line = ScriptLine(client, timeout)
    try:
        await line.open()
        yield client, line
    finally:
        await line.close()
        await client.aclose()


async def line_client_id(client: aioredis.Redis, command: str) -> str:
    """The server's id of the connection whose current command is `command`."""
    for _ in range(100):
        for info in await client.client_list():
            if info.get("cmd") == command:
                return str(info["id"])
        await asyncio.sleep(0.01)
    raise AssertionError(f"no connection is running {command}")


def test_replies_reach_their_callbacks_in_order(redis_url: str, run: Runner) -> None:
    """Commands written back to back before any reply get their own replies, in order."""

    async def scenario() -> None:
        async with client_with_line(redis_url) as (_client, line):
            got: list[Reply] = []
            done = asyncio.Event()

            def last(reply: Reply) -> None:
                got.append(reply)
                done.set()

            line.send(cmd("SET", "k", "1"), got.append)
            line.send(cmd("INCRBY", "k", 41), got.append)
            line.send(cmd("GET", "k"), last)
            await asyncio.wait_for(done.wait(), 5)
            assert got == [b"OK", 42, b"42"]
            assert await line.call(cmd("PING")) == b"PONG"

    run(scenario())


def test_an_error_reply_fails_only_its_own_command(redis_url: str, run: Runner) -> None:
    """An error reply raises for its command (NOSCRIPT as NoScriptError); the connection stays
    open and the next command is answered."""

    async def scenario() -> None:
        async with client_with_line(redis_url) as (_client, line):
            with pytest.raises(NoScriptError):
                await line.call(cmd("EVALSHA", "0" * 40, 0))
            assert line.ready
            assert await line.call(cmd("PING")) == b"PONG"

    run(scenario())


def test_a_killed_connection_fails_what_waits_and_opens_again(redis_url: str, run: Runner) -> None:
    """When the server drops the connection, every waiting command gets a ConnectionError and
    the line can open a fresh connection from the pool."""

    async def scenario() -> None:
        async with client_with_line(redis_url) as (client, line):
            blocked = asyncio.ensure_future(line.call(cmd("BLPOP", "never", 0)))
            behind = asyncio.ensure_future(line.call(cmd("PING")))
            await client.client_kill_filter(_id=await line_client_id(client, "blpop"))
            for waiting in (blocked, behind):
                with pytest.raises(RedisConnectionError):
                    await asyncio.wait_for(waiting, 5)
            assert not line.ready
            await line.open()
            assert await line.call(cmd("PING")) == b"PONG"

    run(scenario())


def test_a_reply_later_than_the_timeout_fails_and_drops_the_connection(
    redis_url: str, run: Runner
) -> None:
    """A command unanswered for `timeout` seconds fails with TimeoutError, and so does every
    command behind it; the connection is dropped (its late reply could not be matched)."""

    async def scenario() -> None:
        async with client_with_line(redis_url, timeout=0.3) as (_client, line):
            started = time.monotonic()
            blocked = asyncio.ensure_future(line.call(cmd("BLPOP", "never", 0)))
            behind = asyncio.ensure_future(line.call(cmd("PING")))
            for waiting in (blocked, behind):
                with pytest.raises(RedisTimeoutError):
                    await asyncio.wait_for(waiting, 5)
            assert 0.25 < time.monotonic() - started < 3
            assert not line.ready

    run(scenario())


def test_events_of_a_replaced_connection_are_ignored(redis_url: str, run: Runner) -> None:
    """Bytes or a close reported late by a dropped connection's transport (a TLS close can
    finish after a new connection opened) leave the new connection alone."""

    async def scenario() -> None:
        async with client_with_line(redis_url) as (_client, line):
            old = line._wire
            assert old is not None
            line.drop()
            await line.open()
            old.data_received(b"+STRAY\r\n")
            old.eof_received()
            old.connection_lost(None)
            assert line.ready
            assert await line.call(cmd("PING")) == b"PONG"

    run(scenario())


def test_closing_gives_the_connection_back_to_the_pool(redis_url: str, run: Runner) -> None:
    """After close, the pool has no connection checked out for the line, and the server holds
    no connection of it."""

    async def scenario() -> None:
        async with client_with_line(redis_url) as (client, line):
            await line.call(cmd("CLIENT", "SETNAME", "scriptline"))
            await line.close()
            pool = client.connection_pool
            assert not pool._in_use_connections
            for _ in range(100):
                names = [c.get("name") for c in await client.client_list()]
                if "scriptline" not in names:
                    break
                await asyncio.sleep(0.01)
            assert "scriptline" not in names

    run(scenario())


def test_a_callback_that_raises_does_not_stop_the_replies_behind_it(
    redis_url: str, run: Runner
) -> None:
    """A failing callback is logged; later commands still get their replies."""

    async def scenario() -> None:
        async with client_with_line(redis_url) as (_client, line):

            def broken(_reply: Reply) -> None:
                raise RuntimeError("callback bug")

            line.send(cmd("PING"), broken)
            assert await line.call(cmd("ECHO", "still here")) == b"still here"
            assert line.ready

    run(scenario())


def test_a_cluster_client_is_not_taken_over() -> None:
    """A Cluster client has no single pool: the line says it is unsupported, so callers go
    through the client."""
    line = ScriptLine(RedisCluster(host="127.0.0.1", port=1), 10.0)
    assert not line.supported
