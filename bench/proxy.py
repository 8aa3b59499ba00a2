"""A TCP proxy that delays every chunk by a fixed time in each direction, to put Redis "off
loopback" for `bench/compare` (production Redis is a network hop away, not 30 us).

Each direction keeps its chunks in order and releases each one `delay` after it was read, so
pipelined traffic is delayed, not serialised: the added round trip is 2 x delay.

    python -m bench.proxy --target 127.0.0.1:6379 --delay-ms 2 [--listen-port 0]

prints `listening on <port>` once it accepts connections, and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import TracebackType

import uvloop

CHUNK = 1 << 16


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def read() -> None:
        try:
            while data := await reader.read(CHUNK):
                queue.put_nowait((loop.time() + delay, data))
        except OSError:
            pass
        queue.put_nowait(None)

    async def write() -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    reading = asyncio.create_task(read())
    try:
        await write()
    finally:
        reading.cancel()
        writer.close()


async def _serve_one(
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    host: str,
    port: int,
    delay: float,
) -> None:
    try:
        server_r, server_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return
    # When either side hangs up, the other direction is torn down too.
    tasks = [
        asyncio.create_task(_pipe(client_r, server_w, delay)),
        asyncio.create_task(_pipe(server_r, client_w, delay)),
    ]
    with contextlib.suppress(OSError, ConnectionError):
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    server_w.close()
    client_w.close()


async def serve(target: str, delay_ms: float, listen_port: int) -> None:
    host, _, port = target.rpartition(":")
    delay = delay_ms / 1000

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _serve_one(r, w, host, int(port), delay)

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


class DelayProxy:
    """Run the proxy as its own process (its CPU is nobody's), as a context manager."""

    def __init__(self, target_port: int, delay_ms: float) -> None:
        self.target_port, self.delay_ms = target_port, delay_ms
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> DelayProxy:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.proxy",
                "--target",
                f"127.0.0.1:{self.target_port}",
                "--delay-ms",
                str(self.delay_ms),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"proxy did not start: {line!r}")
        self.port = int(line.split()[-1])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__)
    parser.add_argument("--target", required=True, help="HOST:PORT of the real server")
    parser.add_argument("--delay-ms", type=float, default=2.0, help="added delay each direction")
    parser.add_argument("--listen-port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)
    uvloop.run(serve(args.target, args.delay_ms, args.listen_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
