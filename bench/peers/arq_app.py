"""arq 0.25 (the newest that runs on redis-py 8): one worker process, `max_jobs` = concurrency.

Defaults otherwise: results kept (`keep_result` 3600 s) and the queue polled every 0.5 s
(`poll_delay`), as a user gets them. uvloop runs the loop, as for workflow-worker.
Run inside .venv-peers/arq: python -m bench.peers.arq_app worker|enqueue|version ...
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvloop
from arq import create_pool  # type: ignore[import-not-found,unused-ignore]
from arq.connections import RedisSettings  # type: ignore[import-not-found,unused-ignore]
from arq.worker import Worker  # type: ignore[import-not-found,unused-ignore]

from bench.peers.common import STAMPS, parser, push_all, versions


async def stamp(ctx: dict[str, Any], enqueued: float, seconds: float) -> None:
    STAMPS.started(enqueued)
    if seconds:
        await asyncio.sleep(seconds)
    STAMPS.finished()


def work(url: str, concurrency: int) -> None:
    # arq's Worker takes the current loop when it is built, so uvloop must be current first.
    asyncio.set_event_loop(uvloop.new_event_loop())
    worker = Worker(
        functions=[stamp],
        redis_settings=RedisSettings.from_dsn(url),
        max_jobs=concurrency,
        handle_signals=True,
    )
    worker.run()


async def enqueue(url: str, args: Any) -> None:
    pool = await create_pool(RedisSettings.from_dsn(url))
    try:
        await push_all(args, lambda enq, s: pool.enqueue_job("stamp", enq, s))
    finally:
        await pool.aclose()


def main() -> None:
    args = parser("bench.peers.arq_app").parse_args()
    if args.command == "worker":
        work(args.url, args.concurrency)
    elif args.command == "enqueue":
        uvloop.run(enqueue(args.url, args))
    else:
        print(versions(["arq", "redis"]))


if __name__ == "__main__":
    main()
