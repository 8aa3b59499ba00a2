"""`just chaos`: worker processes under steady load while a driver SIGKILLs some, SIGTERMs others
(a rolling deploy), SIGSTOPs one past its lease and SIGCONTs it, and restarts Redis (appendonly,
fsync always; alternately by SIGTERM and SIGKILL). Then it checks every enqueued job: it must
have completed or be in the dead-letter list (lost = 0), and every job that ran twice must be
explained by a fault (a stopped worker whose lease was taken, a kill between a job's end and
its acknowledgement, a Redis restart). Prints a table; exits 1 on a lost or unexplained job.

    python -m bench.chaos --minutes 10 --workers 4
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.chaos_flows import RECORD_PREFIX
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.local.devstack import RedisServer, WorkerProcess, worker_environment
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings

QUEUE = "chaos:queue"
KEYS = QueueKeys.for_queue(QUEUE)
ROOT = Path(__file__).resolve().parent.parent
# A SIGTERMed worker must exit within its shutdown timeout plus this (requeue and leave).
DRAIN_SLACK = 25.0
ACTIONS = ("kill", "stop", "term", "redis", "kill", "term", "stop", "redis-kill")


@dataclass
class Config:
    """One chaos run; the defaults are the bounded run of the test suite."""

    seconds: float = 45.0
    workers: int = 3
    concurrency: int = 10
    lease: float = 2.0
    rate: float = 25.0
    job_min: float = 0.05
    job_max: float = 0.8
    action_every: float = 4.5
    settle: float = 45.0
    shutdown_timeout: float = 0.5
    seed: int | None = None


@dataclass
class Faults:
    """What the driver did, on the wall clock (time.time), for attributing duplicates."""

    kills: list[tuple[int, float]] = field(default_factory=list)
    stops: list[tuple[int, float, float]] = field(default_factory=list)
    terms: list[tuple[int, float]] = field(default_factory=list)
    redis: list[tuple[float, float, str]] = field(default_factory=list)
    slow_drains: list[str] = field(default_factory=list)


@dataclass
class Execution:
    """One run of a job on one worker process, from the flow's records."""

    job: str
    run: str
    pid: int
    attempt: int
    start: float
    end: float | None = None
    cancelled: float | None = None


@dataclass
class Report:
    jobs: int
    completed: int
    dead: int
    lost: list[str]
    kills: int
    terms: int
    stops: int
    restarts: int
    reruns: int
    duplicates: int
    duplicates_metric: int
    concurrent: int
    unexplained: list[str]
    worst_kill_redelivery: float
    worst_stop_redelivery: float
    leftovers: dict[str, int]
    seconds: float
    causes: dict[str, int] = field(default_factory=dict)
    slow_drains: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        bad = self.lost or self.unexplained or self.slow_drains
        return not bad and not any(self.leftovers.values())

    def table(self) -> str:
        rows = [
            ("jobs enqueued", self.jobs),
            ("completed", self.completed),
            ("dead-lettered", self.dead),
            ("lost", len(self.lost)),
            ("SIGKILLs", self.kills),
            ("SIGTERMs (rolling deploy)", self.terms),
            ("SIGSTOPs past the lease", self.stops),
            ("Redis restarts", self.restarts),
            ("executions beyond one per job (re-runs)", self.reruns),
            ("duplicates (jobs completed twice, records)", self.duplicates),
            ("duplicates (workflow_duplicate_completions_total)", self.duplicates_metric),
            ("concurrent double runs", self.concurrent),
            *((f"  of which caused by {k}", v) for k, v in sorted(self.causes.items())),
            ("unexplained duplicates", len(self.unexplained)),
            ("worst redelivery after SIGKILL (s)", f"{self.worst_kill_redelivery:.2f}"),
            ("worst redelivery after SIGSTOP (s)", f"{self.worst_stop_redelivery:.2f}"),
            ("left in queue/processing/delayed", sum(self.leftovers.values())),
            ("SIGTERMed workers that overran the drain bound", len(self.slow_drains)),
            ("run time (s)", f"{self.seconds:.0f}"),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [f"| {'measure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
        lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
        return "\n".join(lines)


class Load(threading.Thread):
    """Enqueues `rate` jobs a second through the client API, riding out Redis restarts."""

    def __init__(self, settings: Settings, cfg: Config, rng: random.Random) -> None:
        super().__init__(name="chaos-load", daemon=True)
        self.settings = settings
        self.cfg = cfg
        self.rng = rng
        self.ids: list[str] = []
        self.stop_event = threading.Event()
        self.errors = 0

    def run(self) -> None:
        client = SyncClient(self.settings)
        tick, n, owed = 0.1, 0, 0.0
        try:
            while not self.stop_event.is_set():
                owed += self.cfg.rate * tick
                batch = []
                while owed >= 1:
                    owed -= 1
                    n += 1
                    seconds = round(self.rng.uniform(self.cfg.job_min, self.cfg.job_max), 3)
                    batch.append(JobSpec("chaos", {"seconds": seconds}, id=f"c{n}"))
                if batch:
                    self._push(client, batch)
                time.sleep(tick)
        finally:
            client.close()

    def _push(self, client: SyncClient, batch: list[JobSpec]) -> None:
        """Enqueue once: after an error, the status record tells whether the write landed."""
        while True:
            try:
                client.enqueue_many(batch)
                break
            except (redis.RedisError, OSError):
                self.errors += 1
                time.sleep(0.1)
                try:
                    if client.redis.exists(KEYS.job(str(batch[0].id))):
                        break
                except (redis.RedisError, OSError):
                    continue
        self.ids.extend(str(spec.id) for spec in batch)


class Fleet:
    """The worker processes, their replacements, and the last metrics read from each."""

    def __init__(self, env: dict[str, str], workdir: Path, rng: random.Random) -> None:
        self.env = env
        self.workdir = workdir
        self.rng = rng
        self.live: list[WorkerProcess] = []
        self.gone: list[WorkerProcess] = []
        self.stopped: dict[int, float] = {}
        self.metrics: dict[int, dict[str, float]] = {}
        self._n = 0

    def spawn(self) -> WorkerProcess:
        self._n += 1
        handle = WorkerProcess(self.env, self.workdir / f"worker-{self._n}.log")
        handle.wait_ready(timeout=60)
        self.live.append(handle)
        return handle

    def pick(self) -> WorkerProcess:
        candidates = [w for w in self.live if w.proc.pid not in self.stopped]
        return self.rng.choice(candidates)

    def retire(self, handle: WorkerProcess) -> None:
        self.live.remove(handle)
        self.gone.append(handle)

    def scrape(self, handle: WorkerProcess) -> None:
        if handle.proc.pid in self.stopped or handle.proc.poll() is not None:
            return
        status, body = handle.get("/metrics", timeout=2)
        if status == 200:
            self.metrics[handle.proc.pid] = parse_metrics(body)

    def scrape_all(self) -> None:
        for handle in list(self.live):
            self.scrape(handle)

    def close(self) -> None:
        for handle in self.live:
            if handle.proc.pid in self.stopped and handle.proc.poll() is None:
                handle.proc.send_signal(signal.SIGCONT)
        for handle in self.live:
            handle.stop(timeout=30)
        for handle in self.gone + self.live:
            if handle.proc.poll() is None:
                handle.proc.kill()
                handle.proc.wait()


def note(message: str) -> None:
    """A progress line on stderr (the report goes to stdout)."""
    print(f"chaos: {message}", file=sys.stderr, flush=True)


def parse_metrics(body: str) -> dict[str, float]:
    """The few counters the report sums over processes."""
    wanted = ("workflow_duplicate_completions_total", "workflow_redeliveries_total")
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith(wanted):
            name = line.split("{", 1)[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


class Driver:
    """Runs the faults on a timetable beside the load; `run` returns the report."""

    def __init__(self, cfg: Config, workdir: Path) -> None:
        self.cfg = cfg
        self.workdir = workdir
        self.rng = random.Random(cfg.seed)
        self.server = RedisServer(workdir / "redis", appendonly=True)
        self.faults = Faults()
        self._conts: list[tuple[float, WorkerProcess, float]] = []
        self._stopped: dict[int, float] = {}

    def environment(self) -> dict[str, str]:
        cfg = self.cfg
        return worker_environment(
            self.server.url,
            WORKER_QUEUE=QUEUE,
            WORKER_WORKFLOWS="bench.chaos_flows:WORKFLOWS",
            WORKER_CONCURRENCY=str(cfg.concurrency),
            WORKER_LEASE_SECONDS=str(cfg.lease),
            WORKER_SHUTDOWN_TIMEOUT=str(cfg.shutdown_timeout),
            WORKER_RETRY_BACKOFF_SECONDS="0.1",
            WORKER_RETRY_BACKOFF_MAX_SECONDS="1",
            WORKER_METRICS_INTERVAL="1",
            WORKER_LOG_FORMAT="json",
            PYTHONPATH=str(ROOT),
        )

    def run(self) -> Report:
        began = time.monotonic()
        self.server.start()
        env = self.environment()
        fleet = Fleet(env, self.workdir, self.rng)
        self._stopped = fleet.stopped
        settings = Settings.from_env(env)
        load = Load(settings, self.cfg, self.rng)
        try:
            for _ in range(self.cfg.workers):
                fleet.spawn()
            load.start()
            self._timetable(fleet)
            load.stop_event.set()
            load.join()
            self._settle(fleet, settings, load.ids)
            fleet.scrape_all()
        finally:
            load.stop_event.set()
            fleet.close()
        try:
            return analyse(self.server.url, load.ids, self.faults, fleet, time.monotonic() - began)
        finally:
            self.server.stop()

    def _timetable(self, fleet: Fleet) -> None:
        start = time.monotonic()
        next_action, n = start + self.cfg.action_every, 0
        while time.monotonic() < start + self.cfg.seconds:
            if time.monotonic() >= next_action:
                action = ACTIONS[n % len(ACTIONS)]
                t = time.monotonic()
                self.act(action, fleet)
                note(f"{t - start:6.1f}s {action} ({time.monotonic() - t:.1f}s)")
                n += 1
                next_action += self.cfg.action_every
            self._resume_due()
            fleet.scrape_all()
            time.sleep(0.3)
        while self._conts:
            self._resume_due()
            time.sleep(0.1)

    def act(self, action: str, fleet: Fleet) -> None:
        if action == "kill":
            victim = fleet.pick()
            fleet.scrape(victim)
            victim.proc.kill()
            self.faults.kills.append((victim.proc.pid, time.time()))
            victim.proc.wait()
            fleet.retire(victim)
            fleet.spawn()
        elif action == "term":
            fleet.spawn()
            old = fleet.pick()
            fleet.scrape(old)
            began = time.time()
            self.faults.terms.append((old.proc.pid, began))
            old.stop(timeout=self.cfg.shutdown_timeout + DRAIN_SLACK)
            if time.time() - began > self.cfg.shutdown_timeout + DRAIN_SLACK:
                self.faults.slow_drains.append(f"{old.log_path}: {time.time() - began:.1f}s")
            fleet.retire(old)
        elif action == "stop":
            self._pause(fleet)
        else:
            down = time.time()
            self.server.stop(kill=action == "redis-kill")
            self.server.start()
            self.faults.redis.append((down, time.time(), action))

    def _pause(self, fleet: Fleet) -> None:
        """SIGSTOP one worker for 2.5 leases: its jobs are re-delivered while it sleeps."""
        victim = fleet.pick()
        fleet.scrape(victim)
        victim.proc.send_signal(signal.SIGSTOP)
        stopped_at = time.time()
        fleet.stopped[victim.proc.pid] = stopped_at
        self._conts.append((time.monotonic() + 2.5 * self.cfg.lease, victim, stopped_at))

    def _resume_due(self) -> None:
        for due, victim, stopped_at in list(self._conts):
            if time.monotonic() >= due:
                victim.proc.send_signal(signal.SIGCONT)
                self._stopped.pop(victim.proc.pid, None)
                self.faults.stops.append((victim.proc.pid, stopped_at, time.time()))
                self._conts.remove((due, victim, stopped_at))

    def _settle(self, fleet: Fleet, settings: Settings, ids: list[str]) -> None:
        """Wait until every job is final (or the settle time is over)."""
        deadline = time.monotonic() + self.cfg.settle
        with SyncClient(settings) as client:
            while time.monotonic() < deadline:
                if not pending(client.redis, ids):
                    return
                fleet.scrape_all()
                time.sleep(0.5)


def pending(client: redis.Redis, ids: list[str]) -> list[str]:
    """Jobs whose status record is not final yet."""
    final = {b"success", b"failure", b"dead", b"cancelled"}
    out: list[str] = []
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        with client.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.hget(KEYS.job(job_id), "state")
            states = pipe.execute()
        out += [j for j, s in zip(chunk, states, strict=True) if s not in final]
    return out


def executions(client: redis.Redis, ids: list[str]) -> dict[str, list[Execution]]:
    """Every recorded execution, by job id, ordered by start."""
    out: dict[str, list[Execution]] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        with client.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.lrange(RECORD_PREFIX + job_id, 0, -1)
            for job_id, lines in zip(chunk, pipe.execute(), strict=True):
                out[job_id] = _fold(job_id, [json.loads(line) for line in lines])
    return out


def _fold(job_id: str, events: list[dict[str, Any]]) -> list[Execution]:
    runs: dict[str, Execution] = {}
    for ev in events:
        run = runs.get(ev["run"])
        if run is None:
            run = runs[ev["run"]] = Execution(job_id, ev["run"], ev["pid"], ev["attempt"], ev["t"])
        if ev["ev"] == "end":
            run.end = ev["t"]
        elif ev["ev"] == "cancel":
            run.cancelled = ev["t"]
    return sorted(runs.values(), key=lambda e: e.start)


def dead_ids(client: redis.Redis) -> set[str]:
    out: set[str] = set()
    for item in client.lrange(KEYS.dead, 0, -1):
        try:
            out.add(str(json.loads(json.loads(item)["job"])["id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def analyse(url: str, ids: list[str], faults: Faults, fleet: Fleet, seconds: float) -> Report:
    with redis.Redis.from_url(url) as client:
        runs = executions(client, ids)
        buried = dead_ids(client) & set(ids)
        not_final = set(pending(client, ids))
        leftovers = {
            "queue": int(client.llen(KEYS.queue)),
            "processing": int(client.hlen(KEYS.processing)),
            "delayed": int(client.zcard(KEYS.delayed)),
        }
    lost = sorted(j for j in ids if j in not_final and j not in buried)
    judge = Judge(faults)
    dup_jobs = [j for j, r in runs.items() if sum(e.end is not None for e in r) > 1]
    overlaps = [pair for r in runs.values() for pair in judge.overlaps(r)]
    causes = Counter(str(judge.cause(runs[j])) for j in dup_jobs)
    unexplained = [j for j in dup_jobs if judge.cause(runs[j]) is None]
    unexplained += [f"{a.job} (overlap)" for a, b in overlaps if not judge.explains_overlap(a, b)]
    metric = sum(m.get("workflow_duplicate_completions_total", 0.0) for m in fleet.metrics.values())
    return Report(
        jobs=len(ids),
        completed=len(ids) - len(not_final),
        dead=len(buried),
        lost=lost,
        kills=len(faults.kills),
        terms=len(faults.terms),
        stops=len(faults.stops),
        restarts=len(faults.redis),
        reruns=sum(max(0, len(r) - 1) for r in runs.values()),
        duplicates=len(dup_jobs),
        duplicates_metric=int(metric),
        concurrent=len(overlaps),
        unexplained=unexplained,
        worst_kill_redelivery=judge.worst_redelivery(runs, [(p, t) for p, t in faults.kills]),
        worst_stop_redelivery=judge.worst_redelivery(runs, [(p, t) for p, t, _ in faults.stops]),
        leftovers=leftovers,
        seconds=seconds,
        causes=dict(causes),
        slow_drains=faults.slow_drains,
    )


class Judge:
    """Attributes re-runs to the faults that can cause them."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.killed = dict(faults.kills)
        self.stops: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for pid, stop, cont in faults.stops:
            self.stops[pid].append((stop, cont))

    def finish(self, e: Execution) -> float:
        """When the execution stopped running: its end or cancel, its kill, else its start."""
        for t in (e.end, e.cancelled):
            if t is not None:
                return t
        killed = self.killed.get(e.pid)
        return killed if killed is not None and killed >= e.start else e.start

    def was_stopped(self, e: Execution) -> bool:
        return any(s <= self.finish(e) + 0.5 and c >= e.start for s, c in self.stops[e.pid])

    def killed_before_ack(self, e: Execution) -> bool:
        killed = self.killed.get(e.pid)
        return e.end is not None and killed is not None and killed >= e.end

    def near_restart(self, lo: float, hi: float) -> bool:
        return any(down <= hi and up >= lo for down, up, _ in self.faults.redis)

    def cause(self, runs: list[Execution]) -> str | None:
        """Why a job completed more than once: the fault behind each extra completion."""
        ended = [e for e in runs if e.end is not None]
        causes = []
        for first, second in itertools.pairwise(ended):
            if self.was_stopped(first) or self.was_stopped(second):
                causes.append("SIGSTOP past the lease")
            elif self.killed_before_ack(first):
                causes.append("SIGKILL between end and acknowledgement")
            elif self.near_restart(first.start - 1, second.start):
                causes.append("Redis restart")
            else:
                return None
        return causes[0] if causes else None

    def overlaps(self, runs: list[Execution]) -> list[tuple[Execution, Execution]]:
        out = []
        for i, a in enumerate(runs):
            for b in runs[i + 1 :]:
                if b.start < self.finish(a) and a.pid != b.pid:
                    out.append((a, b))
        return out

    def explains_overlap(self, a: Execution, b: Execution) -> bool:
        return self.was_stopped(a) or self.was_stopped(b)

    def worst_redelivery(
        self, runs: dict[str, list[Execution]], when: list[tuple[int, float]]
    ) -> float:
        """Longest time from a fault on a worker to a job it was running starting elsewhere."""
        worst = 0.0
        for pid, t in when:
            for job_runs in runs.values():
                for i, e in enumerate(job_runs):
                    if e.pid != pid or e.start > t or (e.end or e.cancelled or t + 1) <= t:
                        continue
                    later = [r.start for r in job_runs[i + 1 :] if r.pid != pid and r.start >= t]
                    if later:
                        worst = max(worst, later[0] - t)
        return worst


def run_chaos(cfg: Config, workdir: Path | None = None) -> Report:
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return Driver(cfg, workdir).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the fault phase")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--lease", type=float, default=3.0, help="WORKER_LEASE_SECONDS")
    parser.add_argument("--rate", type=float, default=40.0, help="jobs enqueued per second")
    parser.add_argument("--every", type=float, default=6.0, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and data here")
    args = parser.parse_args(argv)
    cfg = Config(
        seconds=args.minutes * 60,
        workers=args.workers,
        concurrency=args.concurrency,
        lease=args.lease,
        rate=args.rate,
        action_every=args.every,
        settle=120.0,
        seed=args.seed,
    )
    report = run_chaos(cfg, args.workdir)
    print(report.table())
    if report.lost:
        print("lost:", ", ".join(report.lost[:20]))
    if report.unexplained:
        print("unexplained:", ", ".join(report.unexplained[:20]))
    for slow in report.slow_drains:
        print("slow drain:", slow)
    return 0 if report.ok() else 1


if __name__ == "__main__":
    raise SystemExit(main())
