"""taskiq 0.13 with taskiq-redis's RedisStreamBroker (consumer group, XACK after the task, so
a job survives a worker crash like ours; the ListQueueBroker pops with BRPOP and loses it).

The worker runs taskiq's own per-process listener (`start_listen`, what each `taskiq worker`
child runs) in this process, so taskiq is not charged for its process manager. No result
backend (taskiq's default). uvloop runs the loop (taskiq picks it up when installed).
Run inside .venv-peers/taskiq: python -m bench.peers.taskiq_app worker|enqueue|version ...
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvloop
from taskiq.cli.worker.args import WorkerArgs  # type: ignore[import-not-found,unused-ignore]
from taskiq.cli.worker.run import start_listen  # type: ignore[import-not-found,unused-ignore]
from taskiq_redis import RedisStreamBroker  # type: ignore[import-not-found,unused-ignore]

from bench.peers.common import STAMPS, parser, push_all, versions


async def stamp(enqueued: float, seconds: float) -> None:
    STAMPS.started(enqueued)
    if seconds:
        await asyncio.sleep(seconds)
    STAMPS.finished()


def make_broker(url: str) -> tuple[Any, Any]:
    broker = RedisStreamBroker(url, queue_name="bench:taskiq")
    return broker, broker.register_task(stamp, task_name="stamp")


def work(url: str, concurrency: int) -> None:
    # The broker argument is a placeholder: start_listen takes a ready broker object as well.
    args = WorkerArgs.from_cli(
        ["placeholder:broker", "--max-async-tasks", str(concurrency), "--log-level", "WARNING"]
    )
    args.broker = make_broker(url)[0]
    start_listen(args)


async def enqueue(url: str, args: Any) -> None:
    broker, task = make_broker(url)
    await broker.startup()
    try:
        await push_all(args, lambda enq, s: task.kiq(enq, s))
    finally:
        await broker.shutdown()


def main() -> None:
    args = parser("bench.peers.taskiq_app").parse_args()
    if args.command == "worker":
        work(args.url, args.concurrency)
    elif args.command == "enqueue":
        uvloop.run(enqueue(args.url, args))
    else:
        print(versions(["taskiq", "taskiq-redis", "redis"]))


if __name__ == "__main__":
    main()
