"""`just bench-steps`: what durable steps cost, and what they save in a rolling deploy.

  cost      one worker runs --cost-jobs jobs of --cost-steps no-op steps, then the same calls
            without steps: worker CPU per step (microseconds, above the baseline) and Redis
            round trips per step (commands the server ran, above the baseline; the first step of
            an attempt also reads the job's recorded steps).
  rolling   a fleet of --fleet workers (--concurrency slots each) runs five-step workflows of
            --min to --max seconds; once all run, the fleet is replaced one pod at a time (a new
            pod starts, then the old one gets SIGTERM and drains, WORKER_SHUTDOWN_TIMEOUT of each
            --drain-timeouts value). Per scenario, with steps and without: seconds of work
            executed again, drain seconds per pod (mean and longest), the deploy's length, and
            jobs not finished.

CPU is each thread's scheduler run time (see `bench.procstat.tree_cpu`).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.procstat import tree_cpu
from bench.step_workflows import runs_key
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.local.devstack import RedisServer, WorkerProcess, worker_environment
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings

QUEUE = "bench:steps"
KEYS = QueueKeys.for_queue(QUEUE)
FLOWS = "bench.step_workflows:WORKFLOWS"
# Every worker call of a step is a script call; commands a script runs inside are counted by
# the server too, so round trips are counted as script calls.
SCRIPT_CALLS = ("cmdstat_evalsha", "cmdstat_eval")


@dataclass(frozen=True)
class Cost:
    steps: int
    cpu_us_per_step: float
    round_trips_per_step: float
    script_calls_per_job_plain: float
    script_calls_per_job_steps: float


@dataclass(frozen=True)
class Roll:
    kind: str
    drain_timeout: float
    jobs: int
    work_s: float
    rework_s: float
    drain_mean_s: float
    drain_max_s: float
    deploy_s: float
    unfinished: int


def _env(url: str, workdir: Path, **more: str) -> dict[str, str]:
    return worker_environment(
        url,
        WORKER_QUEUE=QUEUE,
        WORKER_WORKFLOWS=FLOWS,
        WORKER_LOG_FORMAT="json",
        WORKER_LOG_LEVEL="WARNING",
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
        **more,
    )


def _commands(r: redis.Redis) -> int:
    stats: dict[str, Any] = r.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k in SCRIPT_CALLS)


def _drain_queue(r: redis.Redis, deadline: float, what: str) -> None:
    while r.llen(QUEUE) or r.hlen(KEYS.processing):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: jobs not done in time")
        time.sleep(0.05)


def _client(url: str) -> SyncClient:
    return SyncClient(Settings.from_env({"REDIS_URL": url, "WORKER_QUEUE": QUEUE}))


def cost(url: str, args: argparse.Namespace, workdir: Path) -> Cost:
    """CPU and round trips of one step: the same calls with steps and without."""
    cpu: dict[str, float] = {}
    commands: dict[str, int] = {}
    for kind in ("plain", "steps"):
        env = _env(url, workdir, WORKER_CONCURRENCY="50")
        worker = WorkerProcess(env, workdir / f"cost-{kind}.log")
        try:
            worker.wait_ready()
            time.sleep(0.5)  # start-up's last chores
            with redis.Redis.from_url(url) as r:
                cpu0, cmd0 = tree_cpu([worker.proc.pid]), _commands(r)
                with _client(url) as client:
                    spec = JobSpec(f"noop_{kind}", {"steps": args.cost_steps})
                    client.enqueue_many([spec] * args.cost_jobs)
                _drain_queue(r, time.monotonic() + 120, "cost")
                cpu[kind] = tree_cpu([worker.proc.pid]) - cpu0
                commands[kind] = _commands(r) - cmd0
        finally:
            worker.stop()
    steps = args.cost_jobs * args.cost_steps
    return Cost(
        steps=args.cost_steps,
        cpu_us_per_step=max(0.0, cpu["steps"] - cpu["plain"]) / steps * 1e6,
        round_trips_per_step=(commands["steps"] - commands["plain"]) / steps,
        script_calls_per_job_plain=commands["plain"] / args.cost_jobs,
        script_calls_per_job_steps=commands["steps"] / args.cost_jobs,
    )


def roll(url: str, kind: str, drain_timeout: float, args: argparse.Namespace, tmp: Path) -> Roll:
    """A fleet runs five-step workflows; it is replaced one pod at a time."""
    env = _env(
        url,
        tmp,
        WORKER_CONCURRENCY=str(args.concurrency),
        WORKER_SHUTDOWN_TIMEOUT=f"{drain_timeout:g}",
        WORKER_LEASE_SECONDS="5",
    )
    rng = random.Random(args.seed)
    count = args.fleet * args.concurrency
    seconds = [rng.uniform(args.min, args.max) for _ in range(count)]
    pods = [WorkerProcess(env, tmp / f"roll-{kind}-{n}.log") for n in range(args.fleet)]
    started: list[WorkerProcess] = list(pods)
    drains: list[float] = []
    try:
        for pod in pods:
            pod.wait_ready()
        with _client(url) as client, redis.Redis.from_url(url) as r:
            specs = [JobSpec(f"five_{kind}", {"seconds": s}) for s in seconds]
            ids = client.enqueue_many(specs)
            deadline = time.monotonic() + 60
            while r.hlen(KEYS.processing) < count and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(args.min / 2)  # every job is some way in
            begun = time.monotonic()
            for n, old in enumerate(pods):
                # One pod at a time: the old one drains while its replacement starts.
                sent = time.monotonic()
                old.proc.terminate()
                new = WorkerProcess(env, tmp / f"roll-{kind}-new-{n}.log")
                started.append(new)
                old.proc.wait(timeout=drain_timeout + 60)  # one signal: a second skips the drain
                drains.append(time.monotonic() - sent)
                new.wait_ready()
            deploy = time.monotonic() - begun
            _drain_queue(r, time.monotonic() + args.max * 3 + 60, f"rolling {kind}")
            rework = 0.0
            for job_id, total in zip(ids, seconds, strict=True):
                runs = r.mget([runs_key(job_id, step) for step in range(1, 6)])
                rework += sum(max(0, int(n or 0) - 1) for n in runs) * total / 5
            states = [r.hget(KEYS.job(job_id), "state") for job_id in ids]
            unfinished = sum(1 for s in states if s != b"success")
            r.delete(*[runs_key(j, s) for j in ids for s in range(1, 6)])
    finally:
        for pod in started:
            pod.stop(timeout=drain_timeout + 60)
    return Roll(
        kind=kind,
        drain_timeout=drain_timeout,
        jobs=count,
        work_s=sum(seconds),
        rework_s=rework,
        drain_mean_s=statistics.mean(drains),
        drain_max_s=max(drains),
        deploy_s=deploy,
        unfinished=unfinished,
    )


def cost_table(c: Cost, args: argparse.Namespace) -> str:
    return "\n".join(
        [
            f"| step cost ({args.cost_jobs} jobs of {c.steps} no-op steps) | value |",
            "| --- | ---: |",
            "| worker CPU per step, above the same calls without steps | "
            f"{c.cpu_us_per_step:.0f} µs |",
            f"| Redis round trips per step | {c.round_trips_per_step:.2f} |",
            f"| script calls per job, without steps | {c.script_calls_per_job_plain:.2f} |",
            f"| script calls per job, with {c.steps} steps | {c.script_calls_per_job_steps:.2f} |",
        ]
    )


def roll_table(rolls: Sequence[Roll], args: argparse.Namespace) -> str:
    lines = [
        f"| rolling deploy: {args.fleet} pods x {args.concurrency} five-step workflows of "
        f"{args.min:g}-{args.max:g} s | drain timeout | work executed again | drain per pod, "
        "mean / longest | deploy | jobs not finished |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rolls:
        share = r.rework_s / r.work_s * 100 if r.work_s else 0.0
        lines.append(
            f"| {'with steps' if r.kind == 'steps' else 'without steps'} | {r.drain_timeout:g} s "
            f"| {r.rework_s:.1f} s ({share:.0f}%) | {r.drain_mean_s:.1f} / {r.drain_max_s:.1f} s "
            f"| {r.deploy_s:.1f} s | {r.unfinished} |"
        )
    return "\n".join(lines)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.steps", description=__doc__)
    p.add_argument("--cost-jobs", type=int, default=500, help="jobs of the cost measurement")
    p.add_argument("--cost-steps", type=int, default=10, help="no-op steps per job")
    p.add_argument("--fleet", type=int, default=4, help="pods in the rolling deploy")
    p.add_argument("--concurrency", type=int, default=5, help="slots per pod (all busy)")
    p.add_argument("--min", type=float, default=2.0, help="shortest workflow, seconds")
    p.add_argument("--max", type=float, default=30.0, help="longest workflow, seconds")
    p.add_argument(
        "--drain-timeouts",
        default="300,10",
        help="WORKER_SHUTDOWN_TIMEOUT values to roll with, comma-separated",
    )
    p.add_argument("--seed", type=int, default=1, help="workflow lengths (the same per scenario)")
    args = p.parse_args(argv)
    args.drain_timeouts = [float(v) for v in str(args.drain_timeouts).split(",") if v]
    if args.cost_jobs < 1 or args.cost_steps < 1 or args.fleet < 1 or args.concurrency < 1:
        p.error("counts must be >= 1")
    if not 0 < args.min <= args.max or not args.drain_timeouts:
        p.error("need 0 < --min <= --max and at least one drain timeout")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        print("[steps] step cost ...", file=sys.stderr, flush=True)
        measured = cost(server.url, args, Path(tmp))
        rolls = []
        for timeout in args.drain_timeouts:
            for kind in ("plain", "steps"):
                print(f"[steps] rolling deploy, {kind}, drain {timeout:g} s ...", file=sys.stderr)
                rolls.append(roll(server.url, kind, timeout, args, Path(tmp)))
    print(cost_table(measured, args))
    print()
    print(roll_table(rolls, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
