"""What every system's runner shares: the stamp files its task writes, and the command line.

Standard library only: this module is imported inside each peer's own virtualenv.

Each task writes two records to files of its own process (no Redis round trip, so the measure
does not load the system it measures): at start `"<enqueued> <started>\\n"` to
`starts-<pid>.log`, and at the end a fixed-width `"<finished>\\n"` to `ends-<pid>.log`, so the
harness counts completions from file sizes alone. Times are `time.time()` (one clock for every
process on the machine). The directory comes from the `BENCH_STAMPS` environment variable, which
forked children (Celery prefork) inherit.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

STAMPS_ENV = "BENCH_STAMPS"
END_WIDTH = 18  # "%17.6f\n": ten integer digits of epoch seconds until the year 2286


class Stamps:
    """Per-process append-only stamp files; opened on first use so forked children get their own."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory
        self.pid = -1
        self.starts = -1
        self.ends = -1

    def _open(self) -> None:
        directory = self.directory or os.environ[STAMPS_ENV]
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        pid = os.getpid()
        self.starts = os.open(os.path.join(directory, f"starts-{pid}.log"), flags, 0o644)
        self.ends = os.open(os.path.join(directory, f"ends-{pid}.log"), flags, 0o644)
        self.pid = pid

    def started(self, enqueued: float) -> None:
        if self.pid != os.getpid():
            self._open()
        # One write() per record: O_APPEND keeps records from threads of one process whole.
        os.write(self.starts, f"{enqueued:.6f} {time.time():.6f}\n".encode())

    def finished(self) -> None:
        if self.pid != os.getpid():
            self._open()
        os.write(self.ends, f"{time.time():17.6f}\n".encode())


STAMPS = Stamps()


class StampReader:
    """The harness's side: completions, finish times and pickup latencies."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def finished(self) -> int:
        total = 0
        for entry in os.scandir(self.directory):
            if entry.name.startswith("ends-"):
                total += entry.stat().st_size // END_WIDTH
        return total

    def finish_times(self) -> list[float]:
        times: list[float] = []
        for path in self.directory.glob("ends-*.log"):
            times.extend(float(line) for line in path.read_text().split("\n") if line.strip())
        return times

    def pickups(self, since: float) -> list[float]:
        """Seconds from enqueue to start, for jobs enqueued at or after `since`."""
        waits: list[float] = []
        for path in self.directory.glob("starts-*.log"):
            for line in path.read_text().splitlines():
                enqueued, _, started = line.partition(" ")
                if started and float(enqueued) >= since:
                    waits.append(float(started) - float(enqueued))
        return waits


def parser(prog: str) -> argparse.ArgumentParser:
    """`worker URL --concurrency N [--pool P]`, `enqueue URL --count N ...` and `version`."""
    top = argparse.ArgumentParser(prog=prog)
    sub = top.add_subparsers(dest="command", required=True)
    work = sub.add_parser("worker", help="consume until SIGTERM")
    work.add_argument("url")
    work.add_argument("--concurrency", type=int, required=True)
    work.add_argument("--pool", default="", help="Celery pool: prefork or threads")
    enq = sub.add_parser("enqueue", help="push stamp jobs, then exit")
    enq.add_argument("url")
    enq.add_argument("--count", type=int, required=True)
    enq.add_argument("--seconds", type=float, default=0.0, help="each job sleeps this long")
    enq.add_argument(
        "--uniform", type=float, nargs=2, metavar=("LO", "HI"), help="sleep uniform(LO, HI)"
    )
    enq.add_argument("--rate", type=float, default=0.0, help="jobs/s, one call each (0: bulk)")
    sub.add_parser("version", help="print the library versions")
    return top


def durations(args: argparse.Namespace) -> Iterator[float]:
    for _ in range(args.count):
        yield random.uniform(*args.uniform) if args.uniform else args.seconds


def pace(count: int, rate: float) -> Iterator[int]:
    """Yield 0..count-1, sleeping so item i is released at start + i / rate (no drift)."""
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield i


async def push_all(
    args: argparse.Namespace,
    enqueue_one: Callable[[float, float], Awaitable[object]],
    width: int = 32,
) -> None:
    """Enqueue every job: paced one call at a time, or in bulk `width` calls at once.

    Each job carries the time taken just before its own enqueue call.
    """
    import asyncio

    seconds = list(durations(args))
    if args.rate > 0:
        start = time.monotonic()
        for i, s in enumerate(seconds):
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await enqueue_one(time.time(), s)
        return
    gate = asyncio.Semaphore(width)

    async def one(s: float) -> None:
        async with gate:
            await enqueue_one(time.time(), s)

    await asyncio.gather(*(one(s) for s in seconds))


def versions(names: Sequence[str]) -> str:
    from importlib.metadata import version

    return " ".join(f"{name}=={version(name)}" for name in names)
