"""workflow-worker, run like the peers: `python -m worker run` with a `stamp` workflow.

Runs in the project's own .venv. The worker gets its settings from the environment (the
contract's variables); `--concurrency` becomes WORKER_CONCURRENCY.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from bench.peers.common import STAMPS, durations, pace, parser, versions
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings
from workflow_worker.workflows.context import JobContext, WorkflowRegistry

QUEUE = "bench:ww"


async def stamp(payload: dict[str, Any], ctx: JobContext) -> None:
    STAMPS.started(float(payload["enqueued"]))
    seconds = float(payload["seconds"])
    if seconds:
        await asyncio.sleep(seconds)
    STAMPS.finished()


WORKFLOWS: WorkflowRegistry = {"stamp": stamp}


def environment(url: str, concurrency: int) -> dict[str, str]:
    """The worker's variables on top of the current environment (WORKER_* may add more)."""
    env = dict(os.environ)
    env.update(
        REDIS_URL=url,
        WORKER_QUEUE=env.get("WORKER_QUEUE", QUEUE),
        WORKER_CONCURRENCY=str(concurrency),
        WORKER_WORKFLOWS="bench.peers.ww_app:WORKFLOWS",
        WORKER_HTTP_HOST="127.0.0.1",
        WORKER_HTTP_PORT=env.get("WORKER_HTTP_PORT", "0"),
        WORKER_LOG_FORMAT="json",
        WORKER_LOG_LEVEL="WARNING",
    )
    return env


def enqueue(url: str, args: argparse.Namespace) -> None:
    settings = Settings.from_env({"REDIS_URL": url, "WORKER_QUEUE": QUEUE})
    seconds = list(durations(args))
    with SyncClient(settings) as client:
        if args.rate > 0:
            for i in pace(args.count, args.rate):
                client.enqueue("stamp", {"enqueued": time.time(), "seconds": seconds[i]})
            return
        for start in range(0, len(seconds), 1000):
            now = time.time()
            chunk = seconds[start : start + 1000]
            client.enqueue_many([JobSpec("stamp", {"enqueued": now, "seconds": s}) for s in chunk])


def main() -> None:
    args = parser("bench.peers.ww_app").parse_args()
    if args.command == "worker":
        env = environment(args.url, args.concurrency)
        # exec keeps this pid, so the harness measures the worker itself.
        os.execve(sys.executable, [sys.executable, "-m", "workflow_worker", "run"], env)  # noqa: S606
    elif args.command == "enqueue":
        enqueue(args.url, args)
    else:
        print(versions(["workflow-worker", "redis"]))


if __name__ == "__main__":
    main()
