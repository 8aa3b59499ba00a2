"""`just demo`: an embedded Redis, worker processes in benchmark mode, jobs, live progress.

Uses REDIS_URL when it is set; otherwise starts a private server on a free port. Stops
everything it started, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from workflow_worker.local.devstack import RedisServer, WorkerProcess, worker_environment
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings

__all__ = ["main", "scrape_totals"]


def scrape_totals(worker: WorkerProcess) -> dict[str, float]:
    """Sum of `workflow_jobs_total` by status, and the active gauge, from one worker."""
    code, text = worker.get("/metrics", timeout=2)
    totals: dict[str, float] = {}
    if code != 200:
        return totals
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "workflow_jobs_total":
                status = sample.labels["status"]
                totals[status] = totals.get(status, 0.0) + sample.value
            elif sample.name == "workflow_jobs_active":
                totals["active"] = totals.get("active", 0.0) + sample.value
    return totals


@contextlib.contextmanager
def redis_for_demo(workdir: Path) -> Iterator[str]:
    """REDIS_URL if set, else a private embedded server for the demo's lifetime."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with RedisServer(workdir / "redis") as server:
        yield server.url


def bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / max(total, 1))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _progress(workers: list[WorkerProcess], client: SyncClient, total: int, started: float) -> int:
    """Redraw one status line until every job has ended; returns how many ended."""
    interactive = sys.stdout.isatty()
    last_print = 0.0
    while True:
        sums: dict[str, float] = {}
        for worker in workers:
            for key, value in scrape_totals(worker).items():
                sums[key] = sums.get(key, 0.0) + value
        ended = int(sum(v for k, v in sums.items() if k not in ("active", "retried")))
        stats = client.redis.llen(client.keys.queue)
        line = (
            f"{bar(ended, total)} queued={stats:<4} active={int(sums.get('active', 0)):<4} "
            f"done={ended}/{total}  {time.monotonic() - started:5.1f}s"
        )
        now = time.monotonic()
        if interactive:
            print("\r" + line, end="", flush=True)
        elif now - last_print >= 2 or ended >= total:
            print(line, flush=True)
            last_print = now
        if ended >= total:
            if interactive:
                print()
            return ended
        time.sleep(0.25)


def run_demo(jobs: int, workers: int, min_s: float, max_s: float) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="workflow-demo-") as tmp,
        redis_for_demo(Path(tmp)) as url,
    ):
        env = worker_environment(
            url,
            WORKER_BENCHMARK_MODE="1",
            WORKER_BENCHMARK_MIN_SECONDS=str(min_s),
            WORKER_BENCHMARK_MAX_SECONDS=str(max_s),
            WORKER_LOG_FORMAT="json",
            WORKER_QUEUE=os.environ.get("WORKER_QUEUE", "workflow:queue"),
        )
        procs = [WorkerProcess(env, Path(tmp) / f"worker-{i}.log") for i in range(workers)]
        try:
            for proc in procs:
                proc.wait_ready()
            print(
                f"redis: {url.split('@')[-1]}   workers: {workers} x 50 slots, benchmark mode "
                f"({min_s:g}-{max_s:g}s per job)"
            )
            settings = Settings.from_env(env)
            with SyncClient(settings) as client:
                started = time.monotonic()
                client.enqueue_many([JobSpec("demo", {"n": i}) for i in range(jobs)])
                print(f"enqueued {jobs} jobs on {settings.queue}")
                ended = _progress(procs, client, jobs, started)
                elapsed = time.monotonic() - started
            ideal = jobs * (min_s + max_s) / 2 / (50 * workers)
            print(
                f"{ended} jobs in {elapsed:.1f}s: {ended / elapsed:.1f} jobs/s "
                f"(mean-sleep ideal at full concurrency: {ideal:.1f}s)"
            )
            for proc in procs:
                print(f"metrics: http://127.0.0.1:{proc.port}/metrics")
        finally:
            codes = [proc.stop() for proc in procs]
            print(f"stopped {len(procs)} workers (exit codes {codes})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workflow_worker.local.demo", description=__doc__
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--max-seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    try:
        return run_demo(args.jobs, args.workers, args.min_seconds, args.max_seconds)
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
