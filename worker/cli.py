"""`workflow-worker` command line: run, enqueue, status."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from worker.settings import ConfigError, Settings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workflow-worker",
        description="Reliable Redis-list worker for I/O-bound asyncio workflows.",
    )
    parser.add_argument("--redis-url", help="overrides REDIS_URL")
    parser.add_argument("--queue", help="overrides WORKER_QUEUE")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a worker until SIGTERM/SIGINT")
    run.add_argument("--concurrency", type=int, help="overrides WORKER_CONCURRENCY")
    run.add_argument("--http-port", type=int, help="overrides WORKER_HTTP_PORT")

    enq = sub.add_parser("enqueue", help="push jobs onto the queue")
    enq.add_argument("workflow")
    enq.add_argument("--payload", default="{}", help="JSON object (default {})")
    enq.add_argument("--count", type=int, default=1, help="how many copies (default 1)")
    enq.add_argument("--max-attempts", type=int)
    enq.add_argument("--timeout", type=float, help="per-attempt timeout, seconds")

    status = sub.add_parser("status", help="queue depth, in flight, dead letters, live workers")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {"redis_url": args.redis_url}
    if args.queue:
        overrides.update(queue=args.queue, queues=(args.queue,))
    if args.command == "run":
        overrides.update(concurrency=args.concurrency, http_port=args.http_port)
    settings = Settings.from_env()
    return settings.with_overrides(**overrides)


def _run(settings: Settings) -> int:
    import uvloop

    from worker.app import Worker
    from worker.logs import setup_logging

    setup_logging(settings.log_format, settings.log_level)
    worker = Worker(settings)
    return uvloop.run(worker.run())


def _enqueue(settings: Settings, args: argparse.Namespace) -> int:
    from worker.client import JobSpec, SyncClient

    try:
        payload = json.loads(args.payload)
    except ValueError as exc:
        raise SystemExit(f"--payload is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise SystemExit("--payload must be a JSON object")
    if args.count < 1:
        raise SystemExit("--count must be at least 1")
    spec = JobSpec(args.workflow, payload, max_attempts=args.max_attempts, timeout=args.timeout)
    with SyncClient(settings) as client:
        ids: list[str] = []
        for start in range(0, args.count, 1000):
            ids += client.enqueue_many([spec] * min(1000, args.count - start))
    for job_id in ids:
        print(job_id)
    return 0


def _status(settings: Settings, as_json: bool) -> int:
    import asyncio

    from worker.client import Client

    async def collect() -> dict[str, Any]:
        async with Client(settings) as client:
            stats = await client.stats()
            from worker.queue import RedisQueue

            workers = await RedisQueue(client.redis, settings.queue).workers()
            return {"queue": settings.queue, **stats.as_dict(), "live_workers": workers}

    data = asyncio.run(collect())
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print(f"queue            {data['queue']}")
    for key in ("queued", "inflight", "delayed", "dead", "workers", "oldest_age_seconds"):
        print(f"{key:<16} {data[key]}")
    for wid, info in sorted(data["live_workers"].items()):
        print(f"  worker {wid}  active={info.get('active', '?')}/{info.get('concurrency', '?')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"workflow-worker: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "run":
            return _run(settings)
        if args.command == "enqueue":
            return _enqueue(settings, args)
        return _status(settings, args.json)
    except ConfigError as exc:
        print(f"workflow-worker: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        logging.getLogger("worker").info("interrupted")
        return 130
