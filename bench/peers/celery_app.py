"""Celery 5.7 on the Redis broker, with the settings recommended for reliable delivery:
`task_acks_late`, `task_reject_on_worker_lost`, `worker_prefetch_multiplier=1`.

No result backend (results ignored), and the worker runs `--without-gossip --without-mingle
--without-heartbeat`: the usual production advice, and less work for Celery than its defaults.
The task sleeps with time.sleep: in prefork and thread pools a job holds its process or thread.
Run inside .venv-peers/celery: python -m bench.peers.celery_app worker|enqueue|version ...
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery  # type: ignore[import-not-found,unused-ignore]

from bench.peers.common import STAMPS, durations, pace, parser, versions

QUEUE = "bench:celery"


def stamp(enqueued: float, seconds: float) -> None:
    STAMPS.started(enqueued)
    if seconds:
        time.sleep(seconds)
    STAMPS.finished()


def make_app(url: str) -> Any:
    app = Celery("bench", broker=url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.task(name="stamp")(stamp)
    return app


def work(url: str, concurrency: int, pool: str) -> None:
    make_app(url).worker_main(
        [
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


def enqueue(url: str, args: Any) -> None:
    task = make_app(url).tasks["stamp"]
    seconds = list(durations(args))
    if args.rate > 0:
        for i in pace(args.count, args.rate):
            task.apply_async((time.time(), seconds[i]))
        return
    # apply_async takes a producer from the app's pool per call, so threads may share the app.
    with ThreadPoolExecutor(8) as threads:
        list(threads.map(lambda s: task.apply_async((time.time(), s)), seconds))


def main() -> None:
    args = parser("bench.peers.celery_app").parse_args()
    if args.command == "worker":
        os.environ.setdefault("FORKED_BY_MULTIPROCESSING", "1")
        work(args.url, args.concurrency, args.pool or "prefork")
    elif args.command == "enqueue":
        enqueue(args.url, args)
    else:
        print(versions(["celery", "kombu", "redis"]))


if __name__ == "__main__":
    main()
