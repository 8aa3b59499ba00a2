"""`ScriptLine`: commands written on one Redis connection, each reply handed to a callback.

The batcher's acknowledgements are the one Redis call every finished job makes, and on a quiet
worker each goes alone. Through the client, every call checks a connection out of the pool,
runs the retry wrapper and the event hooks, reads through an `asyncio.StreamReader` and resumes
the awaiting task: most of what a finished job costs the worker. Here a connection is opened by
the client's own pool, so it connects, authenticates, negotiates TLS and follows Sentinel
exactly like the client's other connections; then its transport is handed to a protocol of
ours. A command is one `write`; hiredis parses the reply inside `data_received`, which calls
the command's callback directly: no task, no future, no timer per command.

Replies come back in the order the commands were written, so callbacks wait in a FIFO. A lost
connection, an unparsable reply or a reply later than `timeout` fails every waiting command
with a `redis.exceptions.ConnectionError`/`TimeoutError` and drops the connection; the caller
decides whether to retry (the batcher does, on a fresh connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["Reply", "ScriptLine"]

log = logging.getLogger("workflow_worker.scriptline")

# A reply: what hiredis parsed, or the exception the command ended with.
Reply = Any
Callback = Callable[[Reply], None]


def reply_error(message: str) -> ResponseError:
    """The redis-py exception for an error reply (NOSCRIPT gets its own class)."""
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


class _Wire(asyncio.Protocol):
    """The protocol of one taken-over connection; events of a replaced one are ignored."""

    def __init__(self, line: ScriptLine) -> None:
        self.line = line

    def data_received(self, data: bytes) -> None:
        if self.line._wire is self:
            self.line._received(data)

    def eof_received(self) -> bool:
        if self.line._wire is self:
            self.line.drop(RedisConnectionError("Redis closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.line._wire is self:
            self.line.drop(RedisConnectionError(f"connection lost: {exc or 'closed'}"))


class ScriptLine:
    """One connection of a standalone or Sentinel client's pool, for a single owner.

    `supported` is False for clients without a single pool (Redis Cluster): the owner then goes
    through the client as usual.
    """

    def __init__(self, client: Any, timeout: float) -> None:
        self._pool = client.connection_pool if isinstance(client, aioredis.Redis) else None
        self._timeout = timeout
        self._conn: Any = None
        self._transport: asyncio.Transport | None = None
        self._wire: _Wire | None = None
        self._reader = hiredis.Reader()
        # Callbacks of written commands, oldest first, each with its reply deadline.
        self._waiting: deque[tuple[Callback, float]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        # Connections whose transport failed under us; given back to the pool by `open`/`close`.
        self._spent: list[Any] = []

    @property
    def supported(self) -> bool:
        return self._pool is not None

    @property
    def ready(self) -> bool:
        """True when a command can be written now."""
        return self._transport is not None

    async def open(self) -> None:
        """Take a fresh connection from the pool (connected and authenticated by it)."""
        assert self._pool is not None, "no single pool: use the client"
        await self._release_spent()
        if self._transport is not None:
            return
        conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        writer = getattr(conn, "_writer", None)
        reader = getattr(conn, "_reader", None)
        if not isinstance(writer, asyncio.StreamWriter):
            # Not the connection layout this was written against (another redis-py): from now
            # on the owner goes through the client, which is slower but correct.
            await self._pool.release(conn)
            self._pool = None
            log.warning("cannot take over a redis-py connection; job updates use the client")
            raise RedisConnectionError("the Redis connection cannot be taken over")
        if reader is not None and reader._buffer:
            self._spent.append(conn)  # unread bytes: out of step with its commands
            await self._release_spent()
            raise RedisConnectionError("the Redis connection had unread bytes")
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        transport = cast(asyncio.Transport, writer.transport)
        self._reader = hiredis.Reader()
        self._conn, self._transport, self._wire = conn, transport, _Wire(self)
        transport.set_protocol(self._wire)

    def send(self, command: bytes, on_reply: Callback) -> None:
        """Write one packed command; `on_reply` is called with its reply or exception."""
        transport = self._transport
        if transport is None:
            on_reply(RedisConnectionError("no open connection"))
            return
        loop = asyncio.get_running_loop()
        self._waiting.append((on_reply, loop.time() + self._timeout))
        transport.write(command)
        if self._watchdog is None:
            self._watchdog = loop.call_at(self._waiting[0][1], self._check_deadline)

    async def call(self, command: bytes) -> Reply:
        """`send`, awaited: the reply, or its exception raised."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def settle(reply: Reply) -> None:
            if not future.done():
                future.set_result(reply)

        self.send(command, settle)
        reply = await future
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def drop(self, reason: BaseException | None = None) -> None:
        """Close the connection; waiting commands fail with `reason` (or a ConnectionError)."""
        transport, self._transport, self._wire = self._transport, None, None
        if self._conn is not None:
            self._spent.append(self._conn)
            self._conn = None
        if transport is not None:
            transport.close()
        error = reason or RedisConnectionError("connection closed")
        while self._waiting:
            self._call(self._waiting.popleft()[0], error)

    async def close(self) -> None:
        """Drop the connection and give it back to the pool."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.drop()
        await self._release_spent()

    async def _release_spent(self) -> None:
        spent, self._spent = self._spent, []
        if self._pool is None:
            return
        for conn in spent:
            # Its transport is closed or belongs to nobody: the pool must reconnect it. No
            # waiting for the close: the stream that would report it no longer gets events.
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)
            with contextlib.suppress(Exception):
                await self._pool.release(conn)

    # -- internals -------------------------------------------------------------------------------

    def _received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        while self._waiting:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.drop(RedisConnectionError(f"unreadable reply: {exc}"))
                return
            if reply is False:
                return
            if isinstance(reply, hiredis.ReplyError):
                reply = reply_error(str(reply))
            self._call(self._waiting.popleft()[0], reply)
        if reader.has_data():
            # Bytes nobody asked for: the connection is out of step with its commands.
            self.drop(RedisConnectionError("reply with no command waiting for it"))

    def _check_deadline(self) -> None:
        """Fail everything if the oldest command is past its deadline, else look again then.

        One timer per `timeout` while commands flow, instead of a timer per command.
        """
        self._watchdog = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        deadline = self._waiting[0][1]
        if deadline <= loop.time():
            self.drop(RedisTimeoutError(f"no reply from Redis within {self._timeout:g}s"))
        else:
            self._watchdog = loop.call_at(deadline, self._check_deadline)

    @staticmethod
    def _call(callback: Callback, reply: Reply) -> None:
        # A failing callback must not take the connection (and everyone's replies) down.
        try:
            callback(reply)
        except Exception:
            log.exception("reply callback failed")
