"""`just bench-compare`: workflow-worker side by side with Celery (prefork and threads), arq,
SAQ and taskiq, on one Redis, in one run.

Each peer runs in its own virtualenv (`scripts/install-peers.sh`, run first unless
--skip-install). Every system runs the same `stamp` task (bench/peers/*_app.py), which writes its
start and finish times to per-process files, so completion and pickup latency are read without
loading Redis or scraping /metrics.

Workloads, per system and per Redis latency (direct, then through bench/proxy.py):
  no-op       --noop jobs queued while the system is paused (SIGSTOP), then released: jobs/s and
              CPU seconds per 1000 jobs, summed over every process of the system;
  I/O         --io-rounds x concurrency jobs of --io-seconds each at --concurrency: wall time
              against the ideal (rounds x seconds), CPU per 1000 jobs;
  pickup      --latency-jobs no-op jobs enqueued one by one at --latency-rate jobs/s:
              p50/p99 of enqueue -> start;
  memory      --inflight jobs of --hold seconds released at once into a fresh process with that
              concurrency (Celery prefork: at most --prefork-max processes): peak RSS (sum over
              the system's processes) and RSS per in-flight job.
Then the production scenario, --production-runs times (medians compared): --production-jobs
workflows of 2-30 s on 2 workflow-worker processes in benchmark mode (WORKER_BENCHMARK_MODE=1)
against Celery prefork with 18 processes: total CPU seconds and memory (sum of RSS, and of PSS,
over all processes incl. Celery's parent).

Writes compare.md (tables, conditions, targets) and compare.png to --output-dir.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.peers.common import STAMPS_ENV, StampReader
from bench.procstat import process_tree, tree_cpu, tree_memory
from bench.proxy import DelayProxy
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.local.devstack import RedisServer, WorkerProcess, worker_environment
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PEER_VENVS = ROOT / ".venv-peers"


class WorkloadError(RuntimeError):
    """A system did not finish a workload in time, or did not start."""


@dataclass(frozen=True)
class Spec:
    """How to run one system: its virtualenv (None: ours), runner module and Celery pool."""

    name: str
    venv: str | None
    module: str
    pool: str = ""

    @property
    def python(self) -> str:
        if self.venv is None:
            return sys.executable
        return str(PEER_VENVS / self.venv / "bin" / "python")


OURS = "workflow-worker"
SPECS = (
    Spec(OURS, None, "bench.peers.ww_app"),
    Spec("celery-prefork", "celery", "bench.peers.celery_app", "prefork"),
    Spec("celery-threads", "celery", "bench.peers.celery_app", "threads"),
    Spec("arq", "arq", "bench.peers.arq_app"),
    Spec("saq", "saq", "bench.peers.saq_app"),
    Spec("taskiq", "taskiq", "bench.peers.taskiq_app"),
)
SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


# --- processes -----------------------------------------------------------------------------


class Running:
    """One system's worker process (and its children) plus its stamp directory."""

    def __init__(self, spec: Spec, url: str, concurrency: int, workdir: Path) -> None:
        self.spec, self.url, self.concurrency = spec, url, concurrency
        tag = f"{spec.name}-c{concurrency}-{time.monotonic_ns()}"
        self.stamps = workdir / tag
        self.stamps.mkdir(parents=True)
        self.reader = StampReader(self.stamps)
        self.log = workdir / f"{tag}.log"
        env = {**os.environ, STAMPS_ENV: str(self.stamps), "PYTHONPATH": str(ROOT)}
        env.pop("VIRTUAL_ENV", None)
        self.env = env
        argv = [spec.python, "-m", spec.module, "worker", url, "--concurrency", str(concurrency)]
        if spec.pool:
            argv += ["--pool", spec.pool]
        with self.log.open("wb") as log:
            # Own session: at the end the whole group (pool children too) can be killed by id.
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pids = [self.proc.pid]

    def refresh(self) -> list[int]:
        self.pids = process_tree(self.proc.pid)
        return self.pids

    def cpu(self) -> float:
        return tree_cpu(self.refresh())

    def signal_all(self, signum: int) -> None:
        for pid in self.pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signum)

    def enqueue(self, count: int, *extra: str, timeout: float = 300) -> None:
        """Push `count` stamp jobs with the system's own client library, in its own venv."""
        argv = [self.spec.python, "-m", self.spec.module, "enqueue", self.url, "--count"]
        done = subprocess.run(
            [*argv, str(count), *extra],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise WorkloadError(f"{self.spec.name} enqueue failed:\n{done.stderr[-2000:]}")

    def wait_finished(
        self,
        target: int,
        timeout: float,
        poll: float = 0.02,
        sample: Callable[[], None] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while self.reader.finished() < target:
            if self.proc.poll() is not None:
                raise WorkloadError(f"{self.spec.name} exited: {self.tail()}")
            if time.monotonic() > deadline:
                got = self.reader.finished()
                raise WorkloadError(f"{self.spec.name}: {got}/{target} jobs after {timeout:g} s")
            if sample is not None:
                sample()
            time.sleep(poll)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.refresh()
            self.proc.terminate()
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        # Pool children that outlived their parent, and the parent if it hung, by group id.
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@contextmanager
def running(spec: Spec, url: str, concurrency: int, workdir: Path) -> Iterator[Running]:
    system = Running(spec, url, concurrency, workdir)
    try:
        yield system
    finally:
        system.stop()


# --- workloads -----------------------------------------------------------------------------


def warm_up(system: Running, jobs: int, timeout: float) -> None:
    """Wait until the system runs jobs at all (its start-up), then let imports and pools settle."""
    base = system.reader.finished()
    system.enqueue(jobs)
    system.wait_finished(base + jobs, timeout, poll=0.05)
    time.sleep(0.5)
    system.refresh()


@dataclass
class Batch:
    wall: float
    cpu: float


def batch(system: Running, count: int, seconds: float, timeout: float) -> Batch:
    """Queue `count` jobs while the system is stopped, release it, time it until the last ends.

    Pausing keeps the enqueue speed of each client library (and the enqueue's own CPU in the
    system's Redis client) out of the figure: the system starts with a deep queue, as in a spike.
    """
    base = system.reader.finished()
    system.refresh()
    system.signal_all(signal.SIGSTOP)
    try:
        system.enqueue(count, "--seconds", str(seconds))
        cpu0 = system.cpu()
        released = time.time()
    finally:
        system.signal_all(signal.SIGCONT)
    system.wait_finished(base + count, timeout)
    cpu = system.cpu() - cpu0
    last = max(t for t in system.reader.finish_times())
    return Batch(wall=last - released, cpu=cpu)


def pickup(system: Running, count: int, rate: float, timeout: float) -> tuple[float, float]:
    """p50 and p99 (ms) of enqueue -> start, for jobs enqueued one at a time at `rate`."""
    base = system.reader.finished()
    since = time.time()
    system.enqueue(count, "--rate", str(rate), timeout=timeout + count / rate)
    system.wait_finished(base + count, timeout)
    waits = sorted(system.reader.pickups(since))
    if len(waits) < count:
        raise WorkloadError(f"{system.spec.name}: {len(waits)} start stamps for {count} jobs")
    return percentile(waits, 50) * 1000, percentile(waits, 99) * 1000


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[int(p) - 1]


def memory(system: Running, inflight: int, hold: float, timeout: float) -> tuple[float, int]:
    """Peak RSS (KiB, all processes) with `inflight` jobs released at once, and how many ran."""
    # More jobs than slots would only queue (Celery prefork is capped): no more memory, more time.
    inflight = min(inflight, system.concurrency)
    base = system.reader.finished()
    system.refresh()
    peak = tree_memory(system.pids)[0]
    system.signal_all(signal.SIGSTOP)
    try:
        system.enqueue(inflight, "--seconds", str(hold))
    finally:
        system.signal_all(signal.SIGCONT)

    def sample() -> None:
        nonlocal peak
        peak = max(peak, tree_memory(system.pids)[0])

    system.wait_finished(base + inflight, timeout, poll=0.1, sample=sample)
    return peak, inflight


# --- one system ----------------------------------------------------------------------------


@dataclass
class Row:
    """The figures of one system at one Redis latency (or the error that stopped it)."""

    name: str
    figures: dict[str, float] = field(default_factory=dict)
    error: str = ""


def measure_throughput(spec: Spec, url: str, sizes: argparse.Namespace, workdir: Path) -> Row:
    row = Row(spec.name)
    f = row.figures
    c = sizes.concurrency
    with running(spec, url, c, workdir) as system:
        warm_up(system, max(c, 20), sizes.start_timeout)
        noop = batch(system, sizes.noop, 0.0, sizes.timeout)
        f["noop_jobs_per_s"] = sizes.noop / noop.wall
        f["cpu_per_1000_noop"] = noop.cpu / sizes.noop * 1000
        io_jobs = sizes.io_rounds * c
        io = batch(system, io_jobs, sizes.io_seconds, sizes.timeout)
        f["io_wall"] = io.wall
        f["io_wall_ratio"] = io.wall / (sizes.io_rounds * sizes.io_seconds)
        f["cpu_per_1000_io"] = io.cpu / io_jobs * 1000
        f["pickup_p50_ms"], f["pickup_p99_ms"] = pickup(
            system, sizes.latency_jobs, sizes.latency_rate, sizes.timeout
        )
        if memory_concurrency(spec, sizes) == c:
            measure_memory(system, sizes, f)
            return row
    mc = memory_concurrency(spec, sizes)
    with running(spec, url, mc, workdir) as system:
        warm_up(system, max(min(mc, 100), 20), sizes.start_timeout)
        measure_memory(system, sizes, f)
    return row


def memory_concurrency(spec: Spec, sizes: argparse.Namespace) -> int:
    if spec.pool == "prefork":
        return int(min(sizes.inflight, sizes.prefork_max))
    return int(sizes.inflight)


def measure_memory(system: Running, sizes: argparse.Namespace, f: dict[str, float]) -> None:
    peak, inflight = memory(system, sizes.inflight, sizes.hold, sizes.timeout)
    f["peak_rss_mib"] = peak / 1024
    f["inflight"] = inflight
    f["kib_per_inflight"] = peak / inflight


def measure_all(
    names: Sequence[str], url: str, sizes: argparse.Namespace, workdir: Path, label: str
) -> list[Row]:
    rows = []
    for name in names:
        flush(url)
        print(f"[{label}] {name} ...", flush=True)
        started = time.monotonic()
        try:
            row = measure_throughput(SPEC_BY_NAME[name], url, sizes, workdir)
        except (WorkloadError, subprocess.TimeoutExpired) as exc:
            row = Row(name, error=str(exc).strip().splitlines()[-1][:300])
            print(f"[{label}] {name} FAILED: {exc}", flush=True)
        print(f"[{label}] {name} done in {time.monotonic() - started:.0f} s", flush=True)
        rows.append(row)
    return rows


def flush(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.flushall()


# --- production scenario -------------------------------------------------------------------


@dataclass
class Usage:
    """Resource use of one system from the first push until the last job finished."""

    name: str
    processes: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    peak_rss_mib: float = 0.0
    mean_rss_mib: float = 0.0
    peak_pss_mib: float = 0.0
    idle_cpu_pct: float = 0.0
    error: str = ""
    run: int = 0

    @property
    def cpu_above_idle(self) -> float:
        """CPU beyond what the same processes burn doing nothing for as long: the jobs' share."""
        return max(0.0, self.cpu - self.idle_cpu_pct / 100 * self.wall)


def idle_cpu_pct(pids: Callable[[], Sequence[int]], seconds: float) -> float:
    """Percent of one core the processes use while no job is queued or running."""
    cpu0 = tree_cpu(pids())
    time.sleep(seconds)
    return (tree_cpu(pids()) - cpu0) / seconds * 100


class Sampler:
    """Peak and mean of the summed RSS/PSS of a set of processes."""

    def __init__(self, pids: Callable[[], Sequence[int]]) -> None:
        self.pids = pids
        self.rss: list[int] = []
        self.pss: list[int] = []

    def __call__(self) -> None:
        rss, pss = tree_memory(self.pids())
        self.rss.append(rss)
        self.pss.append(pss)

    def fill(self, usage: Usage) -> None:
        usage.peak_rss_mib = max(self.rss) / 1024
        usage.mean_rss_mib = statistics.fmean(self.rss) / 1024
        usage.peak_pss_mib = max(self.pss) / 1024


def production_ours(url: str, sizes: argparse.Namespace, workdir: Path) -> Usage:
    queue = "bench:production"
    env = worker_environment(
        url,
        WORKER_QUEUE=queue,
        WORKER_CONCURRENCY="50",
        WORKER_BENCHMARK_MODE="1",
        WORKER_BENCHMARK_MIN_SECONDS=str(sizes.production_min),
        WORKER_BENCHMARK_MAX_SECONDS=str(sizes.production_max),
        WORKER_LOG_FORMAT="json",
        WORKER_LOG_LEVEL="WARNING",
    )
    workers = [
        WorkerProcess(env, workdir / f"production-ww-{i}.log")
        for i in range(sizes.production_workers)
    ]
    usage = Usage(OURS, processes=len(workers))
    try:
        for w in workers:
            w.wait_ready()
        pids = [w.proc.pid for w in workers]
        sampler = Sampler(lambda: pids)
        time.sleep(1.0)
        usage.idle_cpu_pct = idle_cpu_pct(lambda: pids, sizes.production_idle)
        keys = QueueKeys.for_queue(queue)
        settings = Settings.from_env({"REDIS_URL": url, "WORKER_QUEUE": queue})
        client = redis.Redis.from_url(url)
        cpu0, start = tree_cpu(pids), time.monotonic()
        with SyncClient(settings) as producer:
            producer.enqueue_many([JobSpec("noop", {})] * sizes.production_jobs)
        deadline = start + sizes.production_timeout
        while client.llen(queue) or client.hlen(keys.processing):
            if time.monotonic() > deadline:
                raise WorkloadError("workflow-worker: production jobs not done in time")
            sampler()
            time.sleep(0.25)
        usage.wall, usage.cpu = time.monotonic() - start, tree_cpu(pids) - cpu0
        sampler()
        sampler.fill(usage)
        client.close()
    finally:
        for w in workers:
            w.stop()
    return usage


def production_celery(url: str, sizes: argparse.Namespace, workdir: Path) -> Usage:
    spec = SPEC_BY_NAME["celery-prefork"]
    usage = Usage(f"celery-prefork x{sizes.production_celery}")
    with running(spec, url, sizes.production_celery, workdir) as system:
        warm_up(system, sizes.production_celery, sizes.start_timeout)
        sampler = Sampler(lambda: system.pids)
        usage.processes = len(system.pids)
        usage.idle_cpu_pct = idle_cpu_pct(system.refresh, sizes.production_idle)
        cpu0, start = system.cpu(), time.monotonic()
        base = system.reader.finished()
        lo, hi = str(sizes.production_min), str(sizes.production_max)
        system.enqueue(sizes.production_jobs, "--uniform", lo, hi)
        system.wait_finished(
            base + sizes.production_jobs, sizes.production_timeout, poll=0.25, sample=sampler
        )
        usage.wall, usage.cpu = time.monotonic() - start, system.cpu() - cpu0
        sampler()
        sampler.fill(usage)
    return usage


def production(url: str, sizes: argparse.Namespace, workdir: Path) -> list[Usage]:
    """--production-runs rounds of (ours, Celery), alternating, so both see the same machine."""
    results = []
    for n in range(1, sizes.production_runs + 1):
        for name, run in ((OURS, production_ours), ("celery-prefork", production_celery)):
            flush(url)
            print(f"[production] {name} run {n} ...", flush=True)
            try:
                usage = run(url, sizes, workdir)
            except (WorkloadError, subprocess.TimeoutExpired, RuntimeError) as exc:
                usage = Usage(name, error=str(exc).strip().splitlines()[-1][:300])
                print(f"[production] {name} FAILED: {exc}", flush=True)
            usage.run = n
            results.append(usage)
    return results


def medians(usages: Sequence[Usage]) -> list[Usage]:
    """One Usage per system, each figure the median over its runs (failed if any run failed)."""
    out = []
    for system in dict.fromkeys(u.name for u in usages):
        runs = [u for u in usages if u.name == system]
        failed = [u for u in runs if u.error]
        if failed:
            out.append(Usage(system, error=failed[0].error))
            continue
        med = Usage(system, processes=runs[0].processes)
        for attr in ("wall", "cpu", "peak_rss_mib", "mean_rss_mib", "peak_pss_mib", "idle_cpu_pct"):
            setattr(med, attr, statistics.median(getattr(u, attr) for u in runs))
        out.append(med)
    return out


# --- report --------------------------------------------------------------------------------

# key, header, format, higher is better
COLUMNS = [
    ("noop_jobs_per_s", "no-op jobs/s", "{:.0f}", True),
    ("io_wall", "I/O wall (s)", "{:.2f}", False),
    ("io_wall_ratio", "I/O wall / ideal", "{:.3f}", False),
    ("cpu_per_1000_noop", "CPU s / 1000 no-op jobs", "{:.3f}", False),
    ("cpu_per_1000_io", "CPU s / 1000 I/O jobs", "{:.3f}", False),
    ("peak_rss_mib", "peak RSS (MiB)", "{:.1f}", False),
    ("inflight", "in flight", "{:.0f}", False),
    ("kib_per_inflight", "RSS / in-flight job (KiB)", "{:.0f}", False),
    ("pickup_p50_ms", "pickup p50 (ms)", "{:.1f}", False),
    ("pickup_p99_ms", "pickup p99 (ms)", "{:.1f}", False),
]
RATIO_COLUMNS = [c for c in COLUMNS if c[0] != "inflight"]


def value_table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| system | " + " | ".join(c[1] for c in COLUMNS) + " |",
        "| --- |" + " ---: |" * len(COLUMNS),
    ]
    for row in rows:
        if row.error:
            lines.append(f"| {row.name} | " + " | ".join(["failed"] * len(COLUMNS)) + " |")
            continue
        cells = [fmt.format(row.figures[key]) for key, _, fmt, _ in COLUMNS]
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    return lines


def ratio_table(rows: Sequence[Row]) -> list[str]:
    ours = next((r for r in rows if r.name == OURS and not r.error), None)
    lines = [
        "| system / workflow-worker | " + " | ".join(c[1] for c in RATIO_COLUMNS) + " |",
        "| --- |" + " ---: |" * len(RATIO_COLUMNS),
    ]
    for row in rows:
        cells = []
        for key, _, _, _ in RATIO_COLUMNS:
            if ours is None or row.error or not ours.figures[key]:
                cells.append("-")
            else:
                cells.append(f"{row.figures[key] / ours.figures[key]:.2f}x")
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    return lines


def production_table(usages: Sequence[Usage]) -> list[str]:
    """Every run, then each system's medians (what the verdicts compare)."""
    lines = [
        "| system | run | processes | wall (s) | CPU s total | idle CPU (% of a core) "
        "| CPU s above idle | peak RSS sum (MiB) | mean RSS sum (MiB) | peak PSS sum (MiB) |",
        "| --- | --- |" + " ---: |" * 8,
    ]
    for u in [*usages, *medians(usages)]:
        run = str(u.run) if u.run else "**median**"
        if u.error:
            lines.append(f"| {u.name} | {run} | failed: {u.error} |" + " |" * 7)
            continue
        lines.append(
            f"| {u.name} | {run} | {u.processes} | {u.wall:.1f} | {u.cpu:.3f} "
            f"| {u.idle_cpu_pct:.3f} | {u.cpu_above_idle:.3f} | {u.peak_rss_mib:.1f} "
            f"| {u.mean_rss_mib:.1f} | {u.peak_pss_mib:.1f} |"
        )
    return lines


def throughput_verdicts(rows: Sequence[Row], label: str) -> list[str]:
    """Target 1: workflow-worker ahead of every peer on I/O throughput and on CPU per job."""
    ours = next((r for r in rows if r.name == OURS and not r.error), None)
    if ours is None:
        return [f"- MISSED ({label}): workflow-worker produced no figures"]
    out = []
    checks = [
        ("io_wall", "I/O-bound throughput at equal concurrency (lower wall time)"),
        ("cpu_per_1000_noop", "CPU per no-op job"),
        ("cpu_per_1000_io", "CPU per I/O job"),
    ]
    for key, what in checks:
        ahead = [
            f"{r.name} ({r.figures[key]:.3g} vs ours {ours.figures[key]:.3g})"
            for r in rows
            if r is not ours and not r.error and r.figures[key] <= ours.figures[key]
        ]
        if ahead:
            out.append(f"- MISSED ({label}) {what}: not ahead of " + ", ".join(ahead))
        else:
            out.append(f"- met ({label}) {what}: ahead of every peer that ran")
    failed = [r.name for r in rows if r.error]
    if failed:
        out.append(f"- ({label}) not measured (failed): " + ", ".join(failed))
    return out


def production_verdicts(usages: Sequence[Usage]) -> list[str]:
    """Target 2: at least 4x less CPU and memory than Celery prefork in production (medians
    over the runs)."""
    systems = medians(usages)
    if len(systems) < 2 or any(u.error for u in systems):
        return ["- MISSED production scenario: a system failed, no comparison"]
    ours, celery = systems
    out = []
    above = celery.cpu_above_idle / ours.cpu_above_idle if ours.cpu_above_idle else math.inf
    for what, a, b in (
        ("CPU seconds", ours.cpu, celery.cpu),
        ("memory (peak RSS sum)", ours.peak_rss_mib, celery.peak_rss_mib),
        ("memory (peak PSS sum)", ours.peak_pss_mib, celery.peak_pss_mib),
    ):
        ratio = b / a if a else math.inf
        verdict = "met" if ratio >= 4 else "MISSED"
        out.append(f"- {verdict} production {what}: Celery prefork / ours = {ratio:.2f}x (>= 4x)")
    out.append(
        f"- (not a target) production CPU above each system's idle use: Celery prefork / ours "
        f"= {above:.1f}x; idle: ours {ours.idle_cpu_pct:.2f}% of a core for "
        f"{ours.processes} processes, Celery {celery.idle_cpu_pct:.2f}% for {celery.processes}"
    )
    return out


# --- chart ---------------------------------------------------------------------------------


def chart(
    results: Sequence[tuple[str, Sequence[Row]]], usages: Sequence[Usage], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("noop_jobs_per_s", "no-op jobs/s (higher is better)", False),
        ("io_wall_ratio", "I/O wall time / ideal (lower is better)", False),
        ("cpu_per_1000_noop", "CPU s per 1000 no-op jobs (lower)", True),
        ("kib_per_inflight", "RSS per in-flight job, KiB (lower)", True),
        ("pickup_p99_ms", "pickup p99, ms (lower)", True),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    names = [row.name for row in results[0][1]]
    width = 0.8 / max(len(results), 1)
    for ax, (key, title, log) in zip(axes.flat, panels, strict=False):
        for i, (label, rows) in enumerate(results):
            values = [r.figures.get(key, math.nan) if not r.error else math.nan for r in rows]
            xs = [x + i * width for x in range(len(rows))]
            ax.bar(xs, values, width, label=short_label(label), color=f"C{i}")
        ax.set_xticks([x + width * (len(results) - 1) / 2 for x in range(len(names))])
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_yscale("log")
    production_panel(axes.flat[5], usages)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=9)
    fig.suptitle("workflow-worker vs Celery, arq, SAQ, taskiq (one Redis, one run)")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def short_label(label: str) -> str:
    """'Redis on loopback (PING ..)' -> 'loopback (PING ..)'; the proxy run -> '+N ms RTT (..)'."""
    return (
        label.replace("Redis on loopback", "loopback")
        .replace("Redis +", "+")
        .replace(" round trip through bench/proxy.py", " RTT")
    )


def production_panel(ax: object, usages: Sequence[Usage]) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    ok = [u for u in medians(usages) if not u.error]
    metrics = [("CPU s total", "cpu"), ("peak RSS sum (MiB)", "peak_rss_mib")]
    width = 0.8 / max(len(ok), 1)
    for i, u in enumerate(ok):
        values = [float(getattr(u, attr)) for _, attr in metrics]
        bars = ax.bar(
            [x + i * width for x in range(len(metrics))],
            values,
            width,
            label=u.name,
            color=f"C{i + 2}",
        )
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks([x + width * (len(ok) - 1) / 2 for x in range(len(metrics))])
    ax.set_xticklabels([m for m, _ in metrics], fontsize=8)
    ax.set_yscale("log")
    ax.set_title("production scenario, medians, loopback (lower is better)", fontsize=10)
    ax.legend(fontsize=7)


# --- main ----------------------------------------------------------------------------------

QUICK = {
    "concurrency": 8,
    "noop": 500,
    "io_rounds": 2,
    "io_seconds": 0.5,
    "inflight": 8,
    "hold": 1.0,
    "latency_jobs": 30,
    "latency_rate": 30.0,
    "added_rtt_ms": 0.0,
    "production_jobs": 8,
    "production_min": 0.2,
    "production_max": 0.6,
    "production_celery": 3,
    "production_idle": 1.0,
    "production_runs": 1,
    "timeout": 60.0,
}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a("--quick", action="store_true", help="tiny sizes, no latency repeat (the test's mode)")
    a("--systems", default=",".join(s.name for s in SPECS), help="comma-separated subset")
    a("--concurrency", type=int, default=50, help="slots per system (processes for prefork)")
    a("--noop", type=int, default=3000, help="no-op jobs")
    a("--io-rounds", type=int, default=10, help="I/O jobs = rounds x concurrency")
    a("--io-seconds", type=float, default=1.0, help="duration of an I/O job")
    a("--inflight", type=int, default=500, help="jobs in flight for the memory figure")
    a("--hold", type=float, default=5.0, help="duration of the memory jobs")
    a("--prefork-max", type=int, default=50, help="cap on Celery prefork processes")
    a("--latency-jobs", type=int, default=250, help="paced jobs for pickup latency")
    a("--latency-rate", type=float, default=50.0, help="jobs/s of the paced enqueue")
    a("--added-rtt-ms", type=float, default=2.0, help="repeat through the proxy (0: no repeat)")
    a("--production-jobs", type=int, default=100)
    a("--production-min", type=float, default=2.0)
    a("--production-max", type=float, default=30.0)
    a("--production-workers", type=int, default=2, help="workflow-worker processes")
    a("--production-celery", type=int, default=18, help="Celery prefork processes")
    a("--production-idle", type=float, default=10.0, help="seconds of idle CPU sampling")
    a("--production-runs", type=int, default=3, help="rounds of the scenario (medians)")
    a("--no-production", action="store_true")
    a(
        "--production-only",
        action="store_true",
        help="only the production scenario (about 8 minutes); writes production.md, no chart",
    )
    a("--timeout", type=float, default=180.0, help="per workload")
    a("--start-timeout", type=float, default=90.0, help="until a system runs its first jobs")
    a("--skip-install", action="store_true", help="do not run scripts/install-peers.sh")
    a("--output-dir", type=Path, default=ROOT / "bench" / "results")
    first, _ = p.parse_known_args(argv)
    if first.quick:
        p.set_defaults(**QUICK)
    sizes = p.parse_args(argv)
    sizes.production_timeout = sizes.production_max * (
        sizes.production_jobs / min(sizes.production_jobs, sizes.production_celery) + 2
    )
    if sizes.production_only and sizes.no_production:
        p.error("--production-only and --no-production exclude each other")
    if sizes.production_only:
        sizes.systems = f"{OURS},celery-prefork"
    unknown = set(sizes.systems.split(",")) - set(SPEC_BY_NAME)
    if unknown:
        p.error(f"unknown systems: {', '.join(sorted(unknown))}")
    return sizes


def install(names: Sequence[str]) -> None:
    venvs = sorted({v for n in names if (v := SPEC_BY_NAME[n].venv) is not None})
    if venvs:
        subprocess.run([str(ROOT / "scripts" / "install-peers.sh"), *venvs], check=True)


def versions(names: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in names:
        spec = SPEC_BY_NAME[name]
        out = subprocess.run(
            [spec.python, "-m", spec.module, "version"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        found[name] = out.stdout.strip()
    return found


def ping_rtt_ms(url: str, count: int = 200) -> float:
    """Mean round trip of PING on one connection."""
    with redis.Redis.from_url(url) as client:
        client.ping()
        start = time.perf_counter()
        for _ in range(count):
            client.ping()
        return (time.perf_counter() - start) / count * 1000


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Report:
    sizes: argparse.Namespace
    started: str
    load_before: str
    redis: str
    versions: dict[str, str]
    rtts: dict[str, float] = field(default_factory=dict)
    results: list[tuple[str, list[Row]]] = field(default_factory=list)
    usages: list[Usage] = field(default_factory=list)
    load_after: str = ""
    minutes: float = 0.0

    def markdown(self) -> str:
        s = self.sizes
        lines = [
            "# workflow-worker against Celery, arq, SAQ and taskiq",
            "",
            f"Run {self.started} UTC, {self.minutes:.1f} min: `{s.command}`.",
            f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python "
            f"{platform.python_version()}, {self.redis}. Load average before/after: "
            f"{self.load_before} / {self.load_after}. The machine was shared with other jobs "
            "(test suites of other sessions), so absolute figures are noisy; a quiet machine "
            "gives cleaner ones.",
            "",
            "Versions: " + "; ".join(f"{k}: {v}" for k, v in self.versions.items()) + ".",
            "",
        ]
        if self.results:
            lines += [
                f"Sizes: concurrency {s.concurrency} per system (Celery prefork: processes); "
                f"no-op: {s.noop} jobs; I/O: {s.io_rounds * s.concurrency} x {s.io_seconds:g} s "
                f"(ideal {s.io_rounds * s.io_seconds:g} s); memory: {s.inflight} x {s.hold:g} s "
                f"jobs in flight (Celery prefork capped at {s.prefork_max} processes); pickup: "
                f"{s.latency_jobs} jobs enqueued one at a time at {s.latency_rate:g}/s.",
                "",
            ]
        for label, rows in self.results:
            lines += [f"## {label}", "", *value_table(rows), "", *ratio_table(rows), ""]
            lines += [f"- {r.name} failed: {r.error}" for r in rows if r.error]
        if self.usages:
            lines += self.production_section()
        lines += ["## Targets", "", *self.verdicts(), "", *NOTES]
        return "\n".join(lines) + "\n"

    def production_section(self) -> list[str]:
        s = self.sizes
        return [
            "## Production scenario",
            "",
            f"{s.production_jobs} workflows of {s.production_min:g}-{s.production_max:g} s "
            f"pushed at once: {s.production_workers} workflow-worker processes (50 slots each, "
            f"WORKER_BENCHMARK_MODE=1) against Celery prefork with {s.production_celery} "
            "processes (the task sleeps a uniform random time in the same range). CPU is "
            "counted from the push until the last job finished, over every process (Celery's "
            "parent too), as each thread's scheduler run time in nanoseconds "
            "(/proc/PID/task/TID/schedstat; 10 ms ticks would round a quiet process's share "
            "away); memory is sampled every 0.25 s. Idle CPU is measured over "
            f"{s.production_idle:g} s before the push; CPU above idle subtracts that rate over "
            "the run's wall time (Celery needs longer: 18 slots for 100 jobs). "
            f"{s.production_runs} rounds, the two systems alternating; the targets compare "
            "the medians.",
            "",
            *production_table(self.usages),
            "",
        ]

    def verdicts(self) -> list[str]:
        out: list[str] = []
        for label, rows in self.results:
            out += throughput_verdicts(rows, label)
        if self.usages:
            out += production_verdicts(self.usages)
        return out


NOTES = [
    "## How each system was run",
    "",
    "- workflow-worker: `python -m worker run`, one process, WORKER_CONCURRENCY slots, default "
    "settings (status records, leases, retries on).",
    "- Celery: Redis broker, `task_acks_late=True`, `task_reject_on_worker_lost=True`, "
    "`worker_prefetch_multiplier=1`, no result backend, `--without-gossip --without-mingle "
    "--without-heartbeat`; prefork: one process per slot (plus the parent), threads: one "
    "thread per slot. The task sleeps with `time.sleep`.",
    "- arq 0.25.0 (newest that runs on redis-py 8): `max_jobs` slots, defaults otherwise "
    "(results kept, queue polled every 0.5 s: that poll is its pickup latency).",
    "- SAQ: `concurrency` slots, defaults otherwise.",
    "- taskiq: taskiq-redis **RedisStreamBroker** (consumer group, acknowledged after the task: "
    "at-least-once like ours; the ListQueueBroker's BRPOP loses a job on a crash), "
    "`--max-async-tasks` slots, no result backend, taskiq's listener run in-process (no "
    "process manager charged).",
    "- The asyncio peers run on uvloop, like workflow-worker.",
    "- No-op and I/O batches are enqueued while the system is stopped (SIGSTOP) and timed from "
    "its release (SIGCONT) to the last finish stamp, so each library's enqueue speed is not "
    "part of its throughput. CPU is the sum over the system's processes (children included).",
    "- RSS per in-flight job = peak RSS sum / jobs in flight: what a slot costs when the system "
    "is sized for that concurrency.",
    "- Pickup = start stamp (written by the task) minus the time taken just before the enqueue "
    "call, for jobs enqueued one at a time, so it includes the enqueue call's own round trip.",
]


def run_latency(
    label: str, names: Sequence[str], url: str, sizes: argparse.Namespace, tmp: Path
) -> list[Row]:
    rows = measure_all(names, url, sizes, tmp, label)
    print("\n".join(value_table(rows)), flush=True)
    return rows


def run_all(sizes: argparse.Namespace, names: Sequence[str], tmp: Path) -> Report:
    with RedisServer(tmp / "redis") as server:
        with redis.Redis.from_url(server.url) as client:
            info = client.info("server")
        report = Report(
            sizes=sizes,
            started=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
            load_before=loadavg(),
            redis=f"{Path(server.binary).name} {info.get('redis_version', '?')} (loopback)",
            versions=versions(names),
        )
        report.rtts["direct"] = ping_rtt_ms(server.url)
        label = f"Redis on loopback (PING {report.rtts['direct']:.2f} ms)"
        if not sizes.production_only:
            report.results.append((label, run_latency(label, names, server.url, sizes, tmp)))
        if sizes.added_rtt_ms > 0 and not sizes.production_only:
            with DelayProxy(server.port, sizes.added_rtt_ms / 2) as proxy:
                report.rtts["proxied"] = ping_rtt_ms(proxy.url)
                label = (
                    f"Redis +{sizes.added_rtt_ms:g} ms round trip through bench/proxy.py "
                    f"(PING {report.rtts['proxied']:.2f} ms)"
                )
                report.results.append((label, run_latency(label, names, proxy.url, sizes, tmp)))
        if not sizes.no_production:
            report.usages = production(server.url, sizes, tmp)
    report.load_after = loadavg()
    return report


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # Unwind instead of dying on the spot: every `finally` then stops the peer processes,
    # which run in sessions of their own and would otherwise outlive this one.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sizes = parse(argv)
    shown = sys.argv[1:] if argv is None else list(argv)
    sizes.command = " ".join(["python -m bench.compare", *shown])
    names = [n for n in sizes.systems.split(",") if n]
    if not sizes.skip_install:
        install(names)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        report = run_all(sizes, names, Path(tmp))
    report.minutes = (time.monotonic() - t0) / 60
    sizes.output_dir.mkdir(parents=True, exist_ok=True)
    text = report.markdown()
    if sizes.production_only:
        (sizes.output_dir / "production.md").write_text(text)
        print(text)
        print(f"wrote {sizes.output_dir / 'production.md'}", flush=True)
        return 0
    (sizes.output_dir / "compare.md").write_text(text)
    chart(report.results, report.usages, sizes.output_dir / "compare.png")
    print(text)
    print(f"wrote {sizes.output_dir / 'compare.md'} and compare.png", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
