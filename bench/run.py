"""`just bench`: one workflow-worker process against the minimal BRPOP loop, same run, same Redis.

Prints a markdown table: no-op throughput and CPU per 1000 jobs, wall time of 1000 one-second
jobs at concurrency 50 and 500, peak RSS and RSS per in-flight job, Redis round trips per job,
and the enqueue rate (single and bulk), each with its ratio to the minimal loop.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.procstat import rss_kib, tree_cpu
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.local.devstack import RedisServer, WorkerProcess, worker_environment
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings

QUEUE = "bench:queue"


@dataclass
class Result:
    """Figures for one system."""

    name: str
    figures: dict[str, float] = field(default_factory=dict)


class System:
    """A consumer process under test: start it, count its completions, stop it."""

    name = ""

    def __init__(self, url: str, workdir: Path, concurrency: int) -> None:
        self.url, self.workdir, self.concurrency = url, workdir, concurrency

    @property
    def pid(self) -> int:
        raise NotImplementedError

    def idle(self, client: redis.Redis) -> bool:
        raise NotImplementedError

    def expect(self, jobs: int) -> None:
        """Note that `jobs` more jobs are about to be pushed."""

    def stop(self) -> None:
        raise NotImplementedError


class WorkflowWorker(System):
    name = "workflow-worker"

    def __init__(self, url: str, workdir: Path, concurrency: int) -> None:
        super().__init__(url, workdir, concurrency)
        env = worker_environment(
            url,
            WORKER_QUEUE=QUEUE,
            WORKER_CONCURRENCY=str(concurrency),
            WORKER_LOG_FORMAT="json",
            WORKER_MAX_ATTEMPTS="1",
        )
        self.proc = WorkerProcess(env, workdir / f"worker-{concurrency}.log")
        self.proc.wait_ready()
        self.keys = QueueKeys.for_queue(QUEUE)

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    def idle(self, client: redis.Redis) -> bool:
        """Every pushed job acknowledged: nothing waits and nothing is claimed.

        Polled through Redis, not /metrics: rendering the metrics page 100 times a second
        would cost the worker more CPU than the jobs being measured.
        """
        with client.pipeline(transaction=False) as pipe:
            pipe.llen(QUEUE)
            pipe.hlen(self.keys.processing)
            queued, inflight = pipe.execute()
        return int(queued) == 0 and int(inflight) == 0

    def stop(self) -> None:
        self.proc.stop()


class MinimalLoop(System):
    name = "minimal loop"

    def __init__(self, url: str, workdir: Path, concurrency: int) -> None:
        super().__init__(url, workdir, concurrency)
        self.client = redis.Redis.from_url(url)
        self.client.delete(f"{QUEUE}:minimal:done")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.minimal", url, QUEUE, str(concurrency)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while self.client.get(f"{QUEUE}:minimal:done") is None:
            if time.monotonic() > deadline:
                raise RuntimeError("minimal loop did not start")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def done(self) -> int:
        return int(self.client.get(f"{QUEUE}:minimal:done") or 0)

    def idle(self, client: redis.Redis) -> bool:
        return self.done() - self.baseline >= self.expected

    def expect(self, jobs: int) -> None:
        self.baseline, self.expected = self.done(), jobs

    baseline = 0
    expected = 0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.client.close()


def push(client: redis.Redis, jobs: int, seconds: float) -> None:
    now = time.time()
    text = json.dumps({"workflow": "sleep", "payload": {"seconds": seconds}, "enqueued_at": now})
    for start in range(0, jobs, 5000):
        client.lpush(QUEUE, *([text] * min(5000, jobs - start)))


# Commands only clients send. Redis also counts the commands a Lua script runs inside it, which
# cost no round trip, so totals over-count; these never run inside our scripts.
CLIENT_COMMANDS = (
    "evalsha",
    "eval",
    "blmove",
    "brpop",
    "set",
    "get",
    "ping",
    "llen",
    "lindex",
    "zcard",
    "hlen",
    "hgetall",
)


def commands(client: redis.Redis) -> int:
    """Round trips so far: calls of client-only commands (a pipeline counts per command)."""
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in CLIENT_COMMANDS)


def drain(system: System, client: redis.Redis, jobs: int, seconds: float) -> dict[str, float]:
    """Push `jobs` and wait for all to finish; wall time, CPU and Redis commands used."""
    system.expect(jobs)
    cpu0, cmd0 = tree_cpu([system.pid]), commands(client)
    start = time.monotonic()
    push(client, jobs, seconds)
    polls = 0
    while True:
        polls += 1
        if system.idle(client):
            break
        time.sleep(0.01)
    wall = time.monotonic() - start
    # The harness's own polls (GET, or LLEN + HLEN) are not the system's round trips.
    harness = polls if isinstance(system, MinimalLoop) else 2 * polls
    cmds = commands(client) - cmd0 - harness
    return {
        "wall": wall,
        "cpu": tree_cpu([system.pid]) - cpu0,
        "rtt_per_job": max(cmds, 0) / jobs,
    }


def peak_memory(system: System, client: redis.Redis, inflight: int) -> tuple[float, float]:
    """RSS (KiB) idle and with `inflight` jobs running at once."""
    time.sleep(0.5)
    idle = rss_kib(system.pid)
    system.expect(inflight)
    push(client, inflight, 4.0)
    deadline = time.monotonic() + 3.0
    busy = idle
    while time.monotonic() < deadline:
        busy = max(busy, rss_kib(system.pid))
        time.sleep(0.05)
    while not system.idle(client):
        time.sleep(0.05)
    return idle, busy


@contextmanager
def running(factory: Callable[[], System]) -> Iterator[System]:
    system = factory()
    try:
        yield system
    finally:
        system.stop()


def measure(cls: type[System], url: str, workdir: Path, sizes: argparse.Namespace) -> Result:
    client = redis.Redis.from_url(url)
    result = Result(cls.name)
    f = result.figures
    with running(lambda: cls(url, workdir, 50)) as system:
        drain(system, client, min(1000, sizes.noop), 0)  # warm-up: imports, JIT-free caches
        noop = drain(system, client, sizes.noop, 0)
        f["noop_jobs_per_s"] = sizes.noop / noop["wall"]
        f["cpu_s_per_1000"] = noop["cpu"] / sizes.noop * 1000
        f["rtt_per_job"] = noop["rtt_per_job"]
        io50 = drain(system, client, sizes.io_jobs, 1.0)
        f["io_c50_wall"] = io50["wall"]
    with running(lambda: cls(url, workdir, 500)) as system:
        # Fresh process: idle RSS after a small warm-up, then 500 jobs in flight at once.
        drain(system, client, 50, 0)
        idle, busy = peak_memory(system, client, 500)
        f["rss_idle_mib"] = idle / 1024
        f["rss_500_mib"] = busy / 1024
        f["kib_per_inflight"] = (busy - idle) / 500
        io500 = drain(system, client, sizes.io_jobs, 1.0)
        f["io_c500_wall"] = io500["wall"]
        f["peak_rss_mib"] = rss_kib(system.pid, "VmHWM") / 1024
    client.close()
    return result


def enqueue_rates(url: str, jobs: int) -> dict[str, float]:
    settings = Settings.from_env(worker_environment(url, WORKER_QUEUE=QUEUE))
    rates: dict[str, float] = {}
    with SyncClient(settings) as client:
        single = max(200, jobs // 10)
        start = time.monotonic()
        for _ in range(single):
            client.enqueue("noop", {})
        rates["single"] = single / (time.monotonic() - start)
        start = time.monotonic()
        for _ in range(0, jobs, 1000):
            client.enqueue_many([JobSpec("noop", {})] * 1000)
        rates["bulk"] = (jobs // 1000 * 1000) / (time.monotonic() - start)
        raw = redis.Redis.from_url(url)
        start = time.monotonic()
        for _ in range(single):
            raw.lpush(QUEUE + ":raw", '{"workflow":"noop"}')
        rates["raw_lpush"] = single / (time.monotonic() - start)
        raw.delete(QUEUE, QUEUE + ":raw")
        raw.close()
    return rates


ROWS = [
    ("noop_jobs_per_s", "no-op throughput (jobs/s)", "{:.0f}", True),
    ("cpu_s_per_1000", "CPU s per 1000 no-op jobs", "{:.3f}", False),
    ("rtt_per_job", "Redis round trips per job (deep queue)", "{:.2f}", False),
    ("io_c50_wall", "{jobs} x 1 s jobs, concurrency 50 (ideal {ideal50:g} s)", "{:.2f} s", False),
    (
        "io_c500_wall",
        "{jobs} x 1 s jobs, concurrency 500 (ideal {ideal500:g} s)",
        "{:.2f} s",
        False,
    ),
    ("rss_idle_mib", "RSS idle (MiB)", "{:.1f}", False),
    ("rss_500_mib", "RSS with 500 in flight (MiB)", "{:.1f}", False),
    ("kib_per_inflight", "RSS per extra in-flight job (KiB)", "{:.2f}", False),
    ("peak_rss_mib", "peak RSS (MiB)", "{:.1f}", False),
]


def ideal_seconds(jobs: int, concurrency: int) -> float:
    """Wall time of `jobs` one-second jobs at `concurrency` with no overhead: whole waves."""
    return float(max(1, math.ceil(jobs / concurrency)))


def table(ours: Result, floor: Result, rates: dict[str, float], sizes: argparse.Namespace) -> str:
    lines = [
        f"| figure | {ours.name} | {floor.name} | ratio (ours / floor) |",
        "| --- | --- | --- | --- |",
    ]
    ideal50, ideal500 = ideal_seconds(sizes.io_jobs, 50), ideal_seconds(sizes.io_jobs, 500)
    for key, template, fmt, _ in ROWS:
        label = template.format(jobs=sizes.io_jobs, ideal50=ideal50, ideal500=ideal500)
        a, b = ours.figures[key], floor.figures[key]
        ratio = a / b if b else float("nan")
        lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio:.2f}x |")
    lines.append(
        f"| enqueue, one call per job (jobs/s) | {rates['single']:.0f} | "
        f"{rates['raw_lpush']:.0f} (raw LPUSH) | {rates['single'] / rates['raw_lpush']:.2f}x |"
    )
    lines.append(f"| enqueue, bulk 1000 per call (jobs/s) | {rates['bulk']:.0f} | - | - |")
    over50 = (ours.figures["io_c50_wall"] / ideal50 - 1) * 100
    over500 = (ours.figures["io_c500_wall"] / ideal500 - 1) * 100
    lines.append("")
    lines.append(
        f"no-op jobs: {sizes.noop}; I/O jobs: {sizes.io_jobs}; ideal {ideal50:g} s at c=50 "
        f"(ours +{over50:.1f}%), {ideal500:g} s at c=500 (ours +{over500:.1f}%)."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--noop", type=int, default=20000, help="no-op jobs per run")
    parser.add_argument("--io-jobs", type=int, default=1000, help="1-second jobs per run")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    sizes = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
        RedisServer(Path(tmp) / "redis") as server,
    ):
        print(f"redis: {server.binary} on port {server.port}; one process each", flush=True)
        floor = measure(MinimalLoop, server.url, Path(tmp), sizes)
        print("minimal loop measured", flush=True)
        ours = measure(WorkflowWorker, server.url, Path(tmp), sizes)
        print("workflow-worker measured", flush=True)
        rates = enqueue_rates(server.url, max(1000, sizes.noop // 2))
    text = table(ours, floor, rates, sizes)
    print(text)
    if sizes.output:
        sizes.output.parent.mkdir(parents=True, exist_ok=True)
        sizes.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
