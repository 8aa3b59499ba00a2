"""SAQ 0.26 (plain `saq`, since `saq[redis]` caps redis<8): one worker process, `concurrency` slots.

Defaults otherwise (job records kept in Redis, blocking dequeue), except the worker's Redis pool:
every slot holds a connection in a blocking dequeue, and redis-py 8's asyncio pool stops at 100
connections ("Too many connections" at concurrency 500), so it gets concurrency + 100.
uvloop runs the loop.
Run inside .venv-peers/saq: python -m bench.peers.saq_app worker|enqueue|version ...
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
import uvloop
from saq import Queue, Worker  # type: ignore[import-not-found,unused-ignore]
from saq.queue.redis import RedisQueue  # type: ignore[import-not-found,unused-ignore]

from bench.peers.common import STAMPS, parser, push_all, versions

NAME = "bench-saq"


async def stamp(ctx: dict[str, Any], *, enqueued: float, seconds: float) -> None:
    STAMPS.started(enqueued)
    if seconds:
        await asyncio.sleep(seconds)
    STAMPS.finished()


async def work(url: str, concurrency: int) -> None:
    queue = RedisQueue(aioredis.from_url(url, max_connections=concurrency + 100), name=NAME)
    await queue.connect()
    try:
        # Worker.start() handles SIGTERM/SIGINT itself and returns after a clean stop.
        await Worker(queue, functions=[stamp], concurrency=concurrency).start()
    finally:
        await queue.disconnect()


async def enqueue(url: str, args: Any) -> None:
    queue = Queue.from_url(url, name=NAME)
    await queue.connect()
    try:
        await push_all(args, lambda enq, s: queue.enqueue("stamp", enqueued=enq, seconds=s))
    finally:
        await queue.disconnect()


def main() -> None:
    args = parser("bench.peers.saq_app").parse_args()
    if args.command == "worker":
        uvloop.run(work(args.url, args.concurrency))
    elif args.command == "enqueue":
        uvloop.run(enqueue(args.url, args))
    else:
        print(versions(["saq", "redis"]))


if __name__ == "__main__":
    main()
