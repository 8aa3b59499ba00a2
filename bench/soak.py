"""`just soak`: worker processes at a steady job rate for a long time, sampling each one's RSS
(`/proc/<pid>/status`) and open file descriptors (`/proc/<pid>/fd`). The work mixes successes,
failures that retry and then dead-letter, and malformed messages, so every code path runs.

A leak fails the run (exit 1): an RSS slope over the second half of the run above the threshold,
or more open descriptors at the end than the first half ever needed (plus a small slack).

    python -m bench.soak --minutes 30
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from workflow_worker.engine.keys import QueueKeys
from workflow_worker.local.devstack import RedisServer, WorkerProcess, worker_environment
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings

QUEUE = "soak:queue"
KEYS = QueueKeys.for_queue(QUEUE)
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class SoakConfig:
    """One soak run; the defaults are `just soak` (30 minutes)."""

    seconds: float = 1800.0
    workers: int = 2
    concurrency: int = 50
    rate: float = 60.0
    interval: float = 10.0
    rss_slope_kib_per_min: float = 512.0
    fd_slack: int = 8
    fail_ratio: float = 0.02
    invalid_ratio: float = 0.01
    seed: int | None = None


@dataclass
class Sample:
    t: float
    rss_kib: int
    fds: int


@dataclass
class WorkerSeries:
    pid: int
    samples: list[Sample] = field(default_factory=list)

    def half(self, second: bool) -> list[Sample]:
        mid = self.samples[0].t + (self.samples[-1].t - self.samples[0].t) / 2
        return [s for s in self.samples if (s.t >= mid) == second]

    def rss_slope(self) -> float:
        """Least-squares slope of RSS over the second half, KiB per minute."""
        pts = [(s.t / 60, float(s.rss_kib)) for s in self.half(second=True)]
        if len(pts) < 3:
            return 0.0
        mx = sum(x for x, _ in pts) / len(pts)
        my = sum(y for _, y in pts) / len(pts)
        var = sum((x - mx) ** 2 for x, _ in pts)
        return sum((x - mx) * (y - my) for x, y in pts) / var if var else 0.0

    def fd_growth(self) -> int:
        """Descriptors open at the end beyond the most the first half ever had open."""
        return self.samples[-1].fds - max(s.fds for s in self.half(second=False))


@dataclass
class SoakReport:
    cfg: SoakConfig
    series: list[WorkerSeries]
    enqueued: int
    finished: int
    backlog: int
    seconds: float

    def leaks(self) -> list[str]:
        out = []
        for w in self.series:
            if w.rss_slope() > self.cfg.rss_slope_kib_per_min:
                out.append(f"worker {w.pid}: RSS grows {w.rss_slope():.0f} KiB/min")
            if w.fd_growth() > self.cfg.fd_slack:
                out.append(f"worker {w.pid}: {w.fd_growth()} more open descriptors")
        return out

    def table(self) -> str:
        head = "| worker | RSS start | RSS mid | RSS end (MiB) | slope 2nd half (KiB/min) "
        head += "| fds start | fds max | fds end |"
        lines = [head, "|---" * 8 + "|"]
        for w in self.series:
            first, mid, last = w.samples[0], w.half(second=True)[0], w.samples[-1]
            lines.append(
                f"| {w.pid} | {first.rss_kib / 1024:.1f} | {mid.rss_kib / 1024:.1f} "
                f"| {last.rss_kib / 1024:.1f} | {w.rss_slope():.0f} | {first.fds} "
                f"| {max(s.fds for s in w.samples)} | {last.fds} |"
            )
        lines.append("")
        lines.append(
            f"{self.enqueued} messages in {self.seconds:.0f} s"
            f" ({self.enqueued / self.seconds:.1f}/s),"
            f" {self.finished} finished, backlog at the end {self.backlog};"
            f" leak thresholds: {self.cfg.rss_slope_kib_per_min:.0f} KiB/min,"
            f" +{self.cfg.fd_slack} descriptors"
        )
        return "\n".join(lines)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class SteadyLoad(threading.Thread):
    """A steady mix: churn jobs, some failing (retry, then dead letter), some malformed."""

    def __init__(self, settings: Settings, cfg: SoakConfig) -> None:
        super().__init__(name="soak-load", daemon=True)
        self.settings = settings
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.stop_event = threading.Event()
        self.sent = 0

    def run(self) -> None:
        tick, owed = 0.1, 0.0
        with SyncClient(self.settings) as client:
            while not self.stop_event.wait(tick):
                owed += self.cfg.rate * tick
                count, owed = int(owed), owed - int(owed)
                specs = [self._spec() for _ in range(count)]
                raw = [s for s in specs if s is None]
                jobs = [s for s in specs if s is not None]
                if jobs:
                    client.enqueue_many(jobs)
                for _ in raw:
                    client.redis.lpush(QUEUE, b'{"workflow": 7, "payload": "not an object"}')
                self.sent += count
                # The dead-letter list is for people; keep it short so Redis stays flat.
                client.redis.ltrim(KEYS.dead, 0, 999)

    def _spec(self) -> JobSpec | None:
        roll = self.rng.random()
        if roll < self.cfg.invalid_ratio:
            return None
        payload = {
            "seconds": round(self.rng.uniform(0.01, 0.3), 3),
            "bytes": self.rng.randint(256, 16384),
            "fail": roll < self.cfg.invalid_ratio + self.cfg.fail_ratio,
        }
        return JobSpec("churn", payload, max_attempts=2)


def _finished(handles: list[WorkerProcess]) -> int:
    total = 0.0
    for handle in handles:
        status, body = handle.get("/metrics", timeout=5)
        for line in body.splitlines() if status == 200 else []:
            if line.startswith("workflow_jobs_total{"):
                total += float(line.rsplit(" ", 1)[1])
    return int(total)


def run_soak(cfg: SoakConfig, workdir: Path | None = None) -> SoakReport:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(workdir / "redis")
    server.start()
    env = worker_environment(
        server.url,
        WORKER_QUEUE=QUEUE,
        WORKER_WORKFLOWS="bench.faults.flows:WORKFLOWS",
        WORKER_CONCURRENCY=str(cfg.concurrency),
        WORKER_RESULT_TTL="60",
        WORKER_RETRY_BACKOFF_SECONDS="0.2",
        WORKER_RETRY_BACKOFF_MAX_SECONDS="1",
        WORKER_LOG_LEVEL="WARNING",
        WORKER_LOG_FORMAT="json",
        PYTHONPATH=str(ROOT),
    )
    handles: list[WorkerProcess] = []
    load = SteadyLoad(Settings.from_env(env), cfg)
    try:
        for n in range(cfg.workers):
            handles.append(WorkerProcess(env, workdir / f"worker-{n}.log"))
        for handle in handles:
            handle.wait_ready()
        load.start()
        series = _sample(handles, cfg)
        load.stop_event.set()
        load.join()
        finished = _finished(handles)
        with redis.Redis.from_url(server.url) as client:
            backlog = int(client.llen(QUEUE))
    finally:
        load.stop_event.set()
        for handle in handles:
            handle.stop()
        server.stop()
    return SoakReport(cfg, series, load.sent, finished, backlog, cfg.seconds)


def _sample(handles: list[WorkerProcess], cfg: SoakConfig) -> list[WorkerSeries]:
    series = [WorkerSeries(h.proc.pid) for h in handles]
    start = time.monotonic()
    while True:
        now = time.monotonic() - start
        for handle, s in zip(handles, series, strict=True):
            if handle.proc.poll() is not None:
                raise RuntimeError(f"worker {s.pid} exited: see {handle.log_path}")
            s.samples.append(Sample(now, rss_kib(s.pid), open_fds(s.pid)))
        if now >= cfg.seconds:
            return series
        time.sleep(min(cfg.interval, max(0.0, cfg.seconds - now)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=60.0, help="messages per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--max-slope", type=float, default=512.0, help="KiB/min, 2nd half")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    cfg = SoakConfig(
        seconds=args.minutes * 60,
        workers=args.workers,
        concurrency=args.concurrency,
        rate=args.rate,
        interval=args.interval,
        rss_slope_kib_per_min=args.max_slope,
    )
    report = run_soak(cfg, args.workdir)
    print(report.table())
    leaks = report.leaks()
    for leak in leaks:
        print("LEAK:", leak)
    print(json.dumps({"leaks": leaks, "enqueued": report.enqueued, "finished": report.finished}))
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())
