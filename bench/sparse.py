"""`just bench-sparse`: what one worker spends when jobs are long and finish seconds apart.

The production scenario of `bench/compare` (100 workflows of 2-30 s) is dominated by two costs
that the throughput benchmarks never see: an idle process's chores, and the one acknowledgement
each finished job needs on its own, with its wake-ups. This measures both for one worker
process in benchmark mode, in about a minute, so a change can be judged without the 16-minute
comparison:

  idle      CPU milliseconds and context switches (wake-ups) per minute with nothing to do;
  sparse    --jobs jobs of --min to --max seconds pushed at once: CPU and context switches per
            job, above the idle rate over the same time.

CPU is each thread's scheduler run time in nanoseconds (see `bench.procstat.tree_cpu`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.procstat import tree_cpu
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.local.devstack import RedisServer, WorkerProcess, worker_environment
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings

QUEUE = "bench:sparse"


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of every live thread of `pid`."""
    total = 0
    for task in os.scandir(f"/proc/{pid}/task"):
        for line in Path(task.path, "status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


@dataclass(frozen=True)
class Round:
    """One measurement: idle rates, then the jobs' share above them."""

    idle_cpu_ms_per_min: float
    idle_switches_per_min: float
    cpu_ms_per_job: float
    switches_per_job: float


def measure(url: str, args: argparse.Namespace, workdir: Path) -> Round:
    env = worker_environment(
        url,
        WORKER_QUEUE=QUEUE,
        WORKER_CONCURRENCY=str(max(args.jobs, 1)),
        WORKER_BENCHMARK_MODE="1",
        WORKER_BENCHMARK_MIN_SECONDS=str(args.min),
        WORKER_BENCHMARK_MAX_SECONDS=str(args.max),
        WORKER_LOG_FORMAT="json",
        WORKER_LOG_LEVEL="WARNING",
    )
    worker = WorkerProcess(env, workdir / "sparse-worker.log")
    try:
        worker.wait_ready()
        pid = worker.proc.pid
        time.sleep(1.0)  # start-up's last chores
        cpu0, sw0, t0 = tree_cpu([pid]), context_switches(pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle_s = time.monotonic() - t0
        idle_cpu, idle_sw = tree_cpu([pid]) - cpu0, context_switches(pid) - sw0
        cpu0, sw0, t0 = tree_cpu([pid]), context_switches(pid), time.monotonic()
        with SyncClient(Settings.from_env({"REDIS_URL": url, "WORKER_QUEUE": QUEUE})) as client:
            client.enqueue_many([JobSpec("noop", {})] * args.jobs)
        keys = QueueKeys.for_queue(QUEUE)
        deadline = t0 + args.max + 30
        with redis.Redis.from_url(url) as r:
            while r.llen(QUEUE) or r.hlen(keys.processing):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jobs not done in time: see {worker.log_path}")
                time.sleep(0.1)
        wall = time.monotonic() - t0
        cpu, sw = tree_cpu([pid]) - cpu0, context_switches(pid) - sw0
    finally:
        worker.stop()
    jobs = max(args.jobs, 1)
    return Round(
        idle_cpu_ms_per_min=idle_cpu / idle_s * 60_000,
        idle_switches_per_min=idle_sw / idle_s * 60,
        cpu_ms_per_job=max(0.0, cpu - idle_cpu / idle_s * wall) / jobs * 1000,
        switches_per_job=max(0.0, sw - idle_sw / idle_s * wall) / jobs,
    )


def table(rounds: Sequence[Round], args: argparse.Namespace) -> str:
    rows = [
        ("idle: CPU ms per minute", "idle_cpu_ms_per_min", "{:.1f}"),
        ("idle: context switches per minute", "idle_switches_per_min", "{:.1f}"),
        (
            f"{args.jobs} jobs of {args.min:g}-{args.max:g} s: CPU ms per job",
            "cpu_ms_per_job",
            "{:.3f}",
        ),
        (
            f"{args.jobs} jobs of {args.min:g}-{args.max:g} s: context switches per job",
            "switches_per_job",
            "{:.2f}",
        ),
    ]
    head = " | ".join(f"round {i + 1}" for i in range(len(rounds)))
    lines = [f"| figure | {head} | median |", "| --- |" + " ---: |" * (len(rounds) + 1)]
    for label, attr, fmt in rows:
        values = [getattr(r, attr) for r in rounds]
        cells = " | ".join(fmt.format(v) for v in values)
        lines.append(f"| {label} | {cells} | {fmt.format(statistics.median(values))} |")
    return "\n".join(lines)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.sparse", description=__doc__)
    p.add_argument("--jobs", type=int, default=50, help="jobs pushed at once (one slot each)")
    p.add_argument("--min", type=float, default=1.0, help="shortest job, seconds")
    p.add_argument("--max", type=float, default=10.0, help="longest job, seconds")
    p.add_argument("--idle-seconds", type=float, default=20.0, help="idle sampling, seconds")
    p.add_argument("--rounds", type=int, default=3, help="rounds (a fresh worker each)")
    args = p.parse_args(argv)
    if args.jobs < 1 or args.rounds < 1 or not 0 < args.min <= args.max:
        p.error("need --jobs >= 1, --rounds >= 1 and 0 < --min <= --max")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        rounds = []
        for n in range(args.rounds):
            print(f"[sparse] round {n + 1} of {args.rounds} ...", file=sys.stderr, flush=True)
            rounds.append(measure(server.url, args, Path(tmp)))
    print(table(rounds, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
