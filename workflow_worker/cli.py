"""`workflow-worker` command line: run, enqueue, status, job, cancel, dead-letter tools, console.

Errors end as one line naming the setting or the cause, and an exit code (see `_report`).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from workflow_worker import __version__
from workflow_worker._flags import count, job_spec, settings_from
from workflow_worker._report import EXIT_INTERRUPTED, EXIT_PIPE, report, silence_stdout
from workflow_worker.settings import Settings

__all__ = ["main"]

# Opt-in: loading WORKER_WORKFLOWS imports the application's code, which a producer command
# does not otherwise do.
ROUTE_HELP = (
    "import WORKER_WORKFLOWS and use its workflows' declared queues "
    "(@workflows.workflow(queue=...)): send the job there, look for it there"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workflow-worker",
        description="Reliable Redis-list worker for I/O-bound asyncio workflows.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an error, not only its line"
    )
    parser.add_argument("--redis-url", help="overrides REDIS_URL")
    parser.add_argument("--queue", help="overrides WORKER_QUEUE")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a worker until SIGTERM/SIGINT")
    # Flags are read as text and checked by their variable's parser, with the same limits.
    run.add_argument("--concurrency", help="overrides WORKER_CONCURRENCY")
    run.add_argument("--http-port", help="overrides WORKER_HTTP_PORT")

    enq = sub.add_parser("enqueue", help="push jobs onto the queue")
    enq.add_argument("workflow")
    enq.add_argument("--payload", default="{}", help="JSON object (default {})")
    enq.add_argument("--count", default="1", help="how many copies (default 1)")
    enq.add_argument("--max-attempts", help="default WORKER_MAX_ATTEMPTS")
    enq.add_argument("--timeout", help="per-attempt timeout, seconds (default WORKER_JOB_TIMEOUT)")
    enq.add_argument("--delay", help="run after this many seconds")
    enq.add_argument("--id", help="job id (also makes the job unique by id; --count 1 only)")
    enq.add_argument("--unique-key", help="skip if a job with this key is queued or running")
    enq.add_argument("--expires", help="seconds from now: not started by then, it never runs")
    enq.add_argument("--route", action="store_true", help=ROUTE_HELP)

    job = sub.add_parser("job", help="print one job's status record")
    job.add_argument("job_id")
    job.add_argument("--json", action="store_true", help="machine-readable output")
    job.add_argument("--route", action="store_true", help=ROUTE_HELP)

    cancel = sub.add_parser("cancel", help="cancel a queued, delayed or running job")
    cancel.add_argument("job_id")
    cancel.add_argument("--route", action="store_true", help=ROUTE_HELP)

    dead = sub.add_parser("dead", help="dead-letter tools: list, show, requeue, purge")
    dead_sub = dead.add_subparsers(dest="dead_command", required=True)
    dead_list = dead_sub.add_parser("list", help="newest first")
    dead_list.add_argument("--count", default="20", help="how many entries (default 20)")
    dead_list.add_argument("--json", action="store_true")
    dead_show = dead_sub.add_parser("show", help="one entry in full")
    dead_show.add_argument("index", type=int)
    dead_requeue = dead_sub.add_parser("requeue", help="put entries back on the queue")
    which = dead_requeue.add_mutually_exclusive_group(required=True)
    which.add_argument("index", type=int, nargs="?")
    which.add_argument("--all", action="store_true")
    dead_purge = dead_sub.add_parser("purge", help="delete every entry")
    dead_purge.add_argument("--yes", action="store_true", help="required: purging is final")

    console = sub.add_parser("console", help="serve the job console (docs/console.md)")
    console.add_argument("--port", help="overrides WORKER_CONSOLE_PORT")

    status = sub.add_parser("status", help="queue depth, in flight, dead letters, live workers")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _run(settings: Settings) -> int:
    import uvloop

    from workflow_worker.app import Worker
    from workflow_worker.ops.logs import setup_logging
    from workflow_worker.workflows.registry import check_rate_limits, load_registry

    # As Celery, uvicorn and arq do: `WORKER_WORKFLOWS=myapp.flows:WORKFLOWS` finds `myapp` in
    # the directory the worker was started from (the console script's own path does not).
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    setup_logging(
        settings.log_format, settings.log_level, flush_interval=settings.log_flush_interval
    )
    registry = load_registry(settings.workflows)
    check_rate_limits(settings, registry)
    worker = Worker(settings, registry)
    # Everything imported so far lives as long as the process: keep it out of the cyclic
    # collector's way, so full collections scan only what jobs allocate.
    gc.collect()
    gc.freeze()
    return uvloop.run(worker.run())


def _console(settings: Settings) -> int:
    import uvloop

    from workflow_worker.console import check_auth_settings, serve
    from workflow_worker.ops.logs import setup_logging

    check_auth_settings(settings)
    setup_logging(
        settings.log_format, settings.log_level, flush_interval=settings.log_flush_interval
    )
    return uvloop.run(serve(settings))


def _declared(settings: Settings, args: argparse.Namespace) -> Any:
    """The registry whose declared queues route the command (`--route`), else None."""
    if not args.route:
        return None
    from workflow_worker.workflows.registry import load_registry

    if "" not in sys.path and os.getcwd() not in sys.path:  # as `run` does
        sys.path.insert(0, os.getcwd())
    return load_registry(settings.workflows)


def _enqueue(settings: Settings, args: argparse.Namespace) -> int:
    from workflow_worker.producer.client import SyncClient

    spec, count = job_spec(args)
    duplicates = 0
    with SyncClient(settings, workflows=_declared(settings, args)) as client:
        for start in range(0, count, 1000):
            for result in client.submit([spec] * min(1000, count - start)):
                if result.created:
                    print(result.id)
                else:
                    duplicates += 1
                    print(f"duplicate of {result.id} (unique key {result.unique_key})")
    return 3 if duplicates else 0


def _status(settings: Settings, as_json: bool) -> int:
    import asyncio

    from workflow_worker.producer.client import Client

    async def collect() -> dict[str, Any]:
        async with Client(settings) as client:
            stats = await client.stats()
            from workflow_worker.engine.queue import RedisQueue

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


def _job(settings: Settings, args: argparse.Namespace) -> int:
    from workflow_worker.producer.client import SyncClient

    job_id, as_json = args.job_id, args.json
    with SyncClient(settings, workflows=_declared(settings, args)) as client:
        record = client.status(job_id)
    if record is None:
        print(f"no record for job {job_id} (unknown, or expired after WORKER_RESULT_TTL)")
        return 1
    if as_json:
        print(json.dumps(record, indent=2, sort_keys=True))
    else:
        for key in sorted(record):
            print(f"{key:<14} {record[key]}")
    return 0


def _cancel(settings: Settings, args: argparse.Namespace) -> int:
    from workflow_worker.producer.client import SyncClient

    job_id = args.job_id
    with SyncClient(settings, workflows=_declared(settings, args)) as client:
        answer = client.cancel(job_id)
    print(f"{job_id}: {answer}")
    return 0 if answer in ("cancelled", "cancelling") else 1


def _dead(settings: Settings, args: argparse.Namespace) -> int:
    from workflow_worker.producer.client import SyncClient

    with SyncClient(settings) as client:
        if args.dead_command == "list":
            entries = client.dead_letters(0, count("--count", args.count, 100_000))
            if args.json:
                print(json.dumps([e.entry for e in entries], indent=2))
                return 0
            for e in entries:
                print(f"{e.index:>4}  {e.entry.get('failed_at', '?')}  {e.reason[:100]}")
            return 0
        if args.dead_command == "show":
            entries = client.dead_letters(args.index, 1)
            if not entries:
                print(f"no dead-letter entry at {args.index}")
                return 1
            print(json.dumps(entries[0].entry, indent=2))
            return 0
        if args.dead_command == "requeue":
            moved = client.requeue_all_dead() if args.all else int(client.requeue_dead(args.index))
            print(f"requeued {moved}")
            return 0 if moved else 1
        if not args.yes:
            print("purge deletes every dead letter for good: add --yes")
            return 1
        print(f"purged {client.purge_dead()}")
        return 0


def _dispatch(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(settings)
    if args.command == "enqueue":
        return _enqueue(settings, args)
    if args.command == "job":
        return _job(settings, args)
    if args.command == "cancel":
        return _cancel(settings, args)
    if args.command == "dead":
        return _dead(settings, args)
    if args.command == "console":
        return _console(settings)
    return _status(settings, args.json)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the process exit code."""
    args = _parser().parse_args(argv)
    settings: Settings | None = None
    try:
        settings = settings_from(args)
        code = _dispatch(settings, args)
        sys.stdout.flush()  # here, so a closed pipe is met inside this handler
        return code
    except BrokenPipeError:
        silence_stdout()
        return EXIT_PIPE
    except KeyboardInterrupt:
        logging.getLogger("workflow_worker").info("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        url = settings.redis_url if settings is not None else ""
        source = "--redis-url" if args.redis_url else "REDIS_URL"
        return report(exc, url, source, args.debug)
