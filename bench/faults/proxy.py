"""A TCP proxy between workers (or producers) and Redis that injects faults per command.

It reads the Redis protocol in both directions, so it knows which reply answers which command,
and applies rules armed at run time:

- `drop_reply`: the command reaches the server and runs; its reply is discarded and the client's
  connection closed (the client cannot know whether it ran);
- `drop_request`: the connection is closed before the command is forwarded (it never ran);
- `delay_reply`: the reply (and every later one on that connection, to keep order) is held for
  `seconds` (past the client's socket timeout, the client gives up while the server acted);
- `reset`: as `drop_reply`, but the connection is reset (RST) rather than closed;
- `loading`: the command runs, and its reply is replaced by the refusal a Redis still loading
  its data set after a restart gives (`-LOADING ...`), a refusal that passes by itself;
- `blackhole`: from that command on, nothing moves on the connection either way until the
  client gives up (a partition that neither side notices at once).

A rule matches a command name (and optionally its first argument, e.g. a script's SHA), skips
the first `skip` matches, then fires `times` times. `partition(seconds)` black-holes every
connection, new ones included, for a while. Pub/sub connections are passed through untouched
(their pushes answer no command).

The proxy runs its own event loop in a thread, so a synchronous driver or a test can arm rules
with plain calls while the processes under test talk through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import hiredis

__all__ = ["ACTIONS", "FaultProxy", "Rule", "reply_end"]

ACTIONS = ("drop_reply", "drop_request", "delay_reply", "reset", "blackhole", "loading")
LOADING = b"-LOADING Redis is loading the dataset in memory\r\n"
CHUNK = 1 << 16


_LINE = frozenset(b"+-:_,#(")
_BULK = frozenset(b"$!=")
_PAIRS = frozenset(b"%|")
_AGGREGATE = frozenset(b"*~>%|")


def reply_end(buf: bytes | bytearray, pos: int = 0) -> int | None:
    """The index just past one complete RESP2/RESP3 value at `pos`, or None if incomplete."""
    if pos >= len(buf):
        return None
    kind = buf[pos]
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return None
    after = nl + 2
    if kind in _LINE:
        return after
    size = int(buf[pos + 1 : nl])
    if size < 0:
        return after
    if kind in _BULK:
        end = after + size + 2
        return end if end <= len(buf) else None
    if kind not in _AGGREGATE:
        raise ValueError(f"not a RESP value at byte {pos}: {bytes(buf[pos : pos + 20])!r}")
    return _items_end(buf, after, size * 2 if kind in _PAIRS else size, kind == ord("|"))


def _items_end(buf: bytes | bytearray, cursor: int, items: int, attribute: bool) -> int | None:
    """Past `items` values from `cursor`; an attribute is followed by the value it describes."""
    position: int | None = cursor
    for _ in range(items + (1 if attribute else 0)):
        assert position is not None
        position = reply_end(buf, position)
        if position is None:
            return None
    return position


@dataclass
class Rule:
    """Fire `action` on commands named `command` (upper case; `arg` narrows to a first
    argument), after skipping `skip` matches, `times` times."""

    command: str
    action: str
    arg: str | None = None
    skip: int = 0
    times: int = 1
    seconds: float = 11.0
    fired: int = 0
    seen: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}: one of {', '.join(ACTIONS)}")

    def matches(self, name: str, first: str | None) -> bool:
        if name != self.command or (self.arg is not None and first != self.arg):
            return False
        self.seen += 1
        if self.seen <= self.skip or self.fired >= self.times:
            return False
        self.fired += 1
        return True


@dataclass
class _Pending:
    name: str
    action: str | None = None
    seconds: float = 0.0


@dataclass(eq=False)
class _Conn:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    pending: deque[_Pending] = field(default_factory=deque)
    passthrough: bool = False
    blackholed: bool = False
    held_until: float = 0.0


class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to `target_port`, injecting faults."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.rules: list[Rule] = []
        self.events: list[tuple[float, str, str]] = []
        self._conns: set[_Conn] = set()
        self._partition_until = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._handlers = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # -- control, from any thread ------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def arm(self, rule: Rule) -> Rule:
        """Add a rule (it applies to commands read from now on)."""
        self._call(lambda: self.rules.append(rule))
        return rule

    def disarm(self) -> None:
        self._call(self.rules.clear)

    def partition(self, seconds: float) -> None:
        """Black-hole every connection, and each new one, for `seconds`; then close them all
        (what a client sees when a partition heals: its old connections are dead)."""

        def start() -> None:
            self._partition_until = time.monotonic() + seconds
            self.events.append((time.time(), "partition", f"{seconds:g}s"))
            for conn in list(self._conns):
                conn.blackholed = True
            assert self._loop is not None
            self._loop.call_later(seconds, self._heal)

        self._call(start)

    def retarget(self, port: int, host: str = "127.0.0.1") -> None:
        """Send new connections to another server and close the current ones (what clients of
        a failed-over Redis see: their connections drop, new ones reach the new primary)."""

        def switch() -> None:
            self.target = (host, port)
            self.events.append((time.time(), "retarget", str(port)))
            for conn in list(self._conns):
                self._close(conn)

        self._call(switch)

    def fired(self) -> int:
        return sum(rule.fired for rule in self.rules)

    def _call(self, func: Callable[[], object]) -> None:
        assert self._loop is not None, "start the proxy first"
        done = threading.Event()

        def run() -> None:
            try:
                func()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    # -- the proxy's own loop ------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        async with server:
            await self._stop.wait()
            for conn in list(self._conns):
                self._close(conn)
            # Let each connection's handler see its sockets closed and end on its own.
            for _ in range(50):
                if not self._handlers:
                    break
                await asyncio.sleep(0.01)

    def _heal(self) -> None:
        for conn in list(self._conns):
            if conn.blackholed:
                self._close(conn)

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection(*self.target)
        except OSError:
            cw.close()
            return
        conn = _Conn(cw, sw, blackholed=time.monotonic() < self._partition_until)
        self._conns.add(conn)
        self._handlers += 1
        tasks = [
            asyncio.create_task(self._upstream(cr, conn)),
            asyncio.create_task(self._downstream(sr, conn)),
        ]
        try:
            with contextlib.suppress(OSError, ConnectionError):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._close(conn)
            self._handlers -= 1

    def _close(self, conn: _Conn, *, reset: bool = False) -> None:
        self._conns.discard(conn)
        if reset:
            sock = conn.client.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for writer in (conn.client, conn.server):
            with contextlib.suppress(Exception):
                writer.close()

    async def _upstream(self, reader: asyncio.StreamReader, conn: _Conn) -> None:
        """Client to server: forward, and note each command (and its fault) in order."""
        parser = hiredis.Reader()
        while data := await reader.read(CHUNK):
            if conn.blackholed:
                continue
            if conn.passthrough:
                conn.server.write(data)
                continue
            parser.feed(data)
            while (command := parser.gets()) is not False:
                if not isinstance(command, list) or not command:
                    continue
                name = bytes(command[0]).decode("ascii", "replace").upper()
                first = bytes(command[1]).decode("utf-8", "replace") if len(command) > 1 else None
                if name in ("SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR"):
                    conn.passthrough = True
                action, seconds = self._fault(name, first)
                if action == "drop_request":
                    self._record(name, action)
                    self._close(conn)
                    return
                if action == "blackhole":
                    self._record(name, action)
                    conn.blackholed = True
                    break
                conn.pending.append(_Pending(name, action, seconds))
            # Whole chunks go on as they came; the parser only follows along.
            if not conn.blackholed:
                conn.server.write(data)

    def _fault(self, name: str, first: str | None) -> tuple[str | None, float]:
        for rule in self.rules:
            if rule.matches(name, first):
                return rule.action, rule.seconds
        return None, 0.0

    def _record(self, name: str, action: str) -> None:
        self.events.append((time.time(), action, name))

    async def _downstream(self, reader: asyncio.StreamReader, conn: _Conn) -> None:
        """Server to client: cut the stream into replies and apply each one's fault."""
        buf = bytearray()
        while data := await reader.read(CHUNK):
            if conn.blackholed:
                continue
            if conn.passthrough and not conn.pending:
                conn.client.write(data)
                continue
            buf += data
            while conn.pending and (end := reply_end(buf)) is not None:
                reply = bytes(buf[:end])
                del buf[:end]
                pending = conn.pending.popleft()
                if not await self._deliver(conn, pending, reply):
                    return
            if conn.passthrough and not conn.pending and buf:
                conn.client.write(bytes(buf))
                buf.clear()

    async def _deliver(self, conn: _Conn, pending: _Pending, reply: bytes) -> bool:
        """Pass one reply on (or not); False once the connection is gone."""
        if pending.action in ("drop_reply", "reset"):
            self._record(pending.name, pending.action)
            self._close(conn, reset=pending.action == "reset")
            return False
        if pending.action == "delay_reply":
            self._record(pending.name, pending.action)
            conn.held_until = time.monotonic() + pending.seconds
        if pending.action == "loading":
            self._record(pending.name, pending.action)
            reply = LOADING
        wait = conn.held_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        conn.client.write(reply)
        return True
