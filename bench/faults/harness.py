"""The fault harness: worker processes under steady load, behind a fault-injecting proxy, on a
Redis with an append-only file, while a driver injects one fault after another. Then the checker
reads every job's history (`checker.py`).

The faults, each named as in docs/guarantees.md:

| name | what is done |
| --- | --- |
| kill | SIGKILL a worker (a replacement starts) |
| term | rolling deploy: start a worker, SIGTERM an old one, time its drain |
| stop | SIGSTOP a worker for 2.5 leases, then SIGCONT |
| redis-restart / redis-kill | stop Redis (SIGTERM / SIGKILL) and start it again |
| failover | the primary hands over to its replica (`FAILOVER`: writes paused until the |
|   | replica has caught up), and clients' connections move to the new primary |
| lost-claim-replies / lost-ack-replies | the proxy drops replies of claims / acknowledgements |
|   | after the server ran them |
| late-replies | a claim and an acknowledgement answered after the clients' socket timeout |
| resets | connections reset right after a script ran |
| partition | every connection black-holed for 1.5 leases, then closed |
| stall | Redis pauses every write for 11 s (past the socket timeout) |
| blocked-loop | jobs that hold their worker's event loop for 2.5 leases |
| identical | byte-identical messages without an id, for a rate-limited workflow |
| huge | a message three times over the size limit |
| memory | Redis's maxmemory set just above its use (noeviction) for 4 s |
| skewed-producer | a producer 120 s behind enqueues delayed jobs |

Every third worker runs with its clock 120 s ahead or behind, for the whole run.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.faults.checker import History, Verdict, judge
from bench.faults.proxy import FaultProxy, Rule
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.scripts import lua_source
from workflow_worker.local.devstack import RedisServer, WorkerProcess, worker_environment
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings

__all__ = ["FAULTS", "Config", "Driver", "Report"]

QUEUE = "faults:queue"
KEYS = QueueKeys.for_queue(QUEUE)
ROOT = Path(__file__).resolve().parents[2]
FAULTS = (
    "kill",
    "lost-claim-replies",
    "term",
    "stall",
    "identical",
    "stop",
    "lost-ack-replies",
    "redis-restart",
    "blocked-loop",
    "late-replies",
    "huge",
    "partition",
    "resets",
    "memory",
    "skewed-producer",
    "redis-kill",
    "failover",
)
SKEW = 120.0
# Faults the proxy carries out: their times are the proxy's events.
PROXIED = ("lost-claim-replies", "lost-ack-replies", "late-replies", "resets", "partition")
# A SIGTERMed worker must exit within its shutdown timeout plus this (requeue and leave).
DRAIN_SLACK = 25.0
SITECUSTOMIZE = """\
import os, time
_skew = float(os.environ.get("FAULTS_CLOCK_SKEW", "0"))
if _skew:
    _real = time.time
    time.time = lambda: _real() + _skew
"""


@dataclass
class Config:
    """One run; the defaults are the bounded run of the test suite."""

    seconds: float = 60.0
    workers: int = 3
    concurrency: int = 10
    lease: float = 2.0
    rate: float = 20.0
    every: float = 3.5
    settle: float = 90.0
    shutdown_timeout: float = 0.5
    max_payload: int = 64 << 10
    seed: int | None = None
    faults: tuple[str, ...] = FAULTS
    # Members of one group (with a callback) enqueued as the faults begin; 0: none.
    fanout: int = 0
    # Share of the load's jobs that are the durable-steps workflow (`flows.steps`); 0: none.
    steps: float = 0.0


@dataclass
class Report:
    verdict: Verdict
    faults: dict[str, int]
    proxy_events: int
    slow_drains: list[str]
    seconds: float
    workdir: Path

    def ok(self) -> bool:
        return self.verdict.ok() and not self.slow_drains

    def table(self) -> str:
        rows: list[tuple[str, object]] = [
            *self.verdict.rows(),
            ("faults injected", sum(self.faults.values())),
            *((f"  {name}", n) for name, n in sorted(self.faults.items())),
            ("proxy fault events (replies lost, late, reset; partitions)", self.proxy_events),
            ("SIGTERMed workers that overran the drain bound", len(self.slow_drains)),
            ("run time (s)", f"{self.seconds:.0f}"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"| {'measure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
        lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
        return "\n".join(lines)


def note(message: str) -> None:
    print(f"faults: {message}", file=sys.stderr, flush=True)


def _sha(script: str) -> str:
    import hashlib

    return hashlib.sha1(lua_source(script).encode(), usedforsecurity=False).hexdigest()


class Fleet:
    """The worker processes and their replacements; every third one has a skewed clock."""

    def __init__(self, env: dict[str, str], workdir: Path, rng: random.Random) -> None:
        self.env = env
        self.workdir = workdir
        self.rng = rng
        self.live: list[WorkerProcess] = []
        self.gone: list[WorkerProcess] = []
        self.stopped: set[int] = set()
        self._n = 0

    def spawn(self) -> WorkerProcess:
        self._n += 1
        env = dict(self.env)
        if self._n % 3 == 0:
            env["FAULTS_CLOCK_SKEW"] = str(SKEW if self._n % 2 else -SKEW)
        handle = WorkerProcess(env, self.workdir / f"worker-{self._n}.log")
        handle.wait_ready(timeout=60)
        self.live.append(handle)
        return handle

    def pick(self) -> WorkerProcess:
        return self.rng.choice([w for w in self.live if w.proc.pid not in self.stopped])

    def retire(self, handle: WorkerProcess) -> None:
        self.live.remove(handle)
        self.gone.append(handle)

    def logs(self) -> list[Path]:
        return [w.log_path for w in self.gone + self.live]

    def close(self) -> None:
        for handle in self.live:
            if handle.proc.pid in self.stopped:
                handle.proc.send_signal(signal.SIGCONT)
        for handle in self.live:
            handle.stop(timeout=30)
        for handle in self.gone + self.live:
            if handle.proc.poll() is None:
                handle.proc.kill()
                handle.proc.wait()


class Load(threading.Thread):
    """The main producer, through the proxy: `rate` jobs a second; some fail their first attempt,
    some are delayed (their due time, on the server's clock, is noted for the checker)."""

    def __init__(self, settings: Settings, cfg: Config, rng: random.Random, history: History):
        super().__init__(name="faults-load", daemon=True)
        self.settings = settings
        self.cfg = cfg
        self.rng = rng
        self.history = history
        self.stop_event = threading.Event()
        self.errors = 0

    def run(self) -> None:
        client = SyncClient(self.settings)
        tick, n, owed = 0.1, 0, 0.0
        last = time.monotonic()
        try:
            while not self.stop_event.is_set():
                # Owed by the clock, so a push held up by a fault is made up afterwards.
                now = time.monotonic()
                owed += self.cfg.rate * (now - last)
                last = now
                batch = []
                while owed >= 1:
                    owed -= 1
                    n += 1
                    batch.append(self._spec(n))
                if batch:
                    self._push(client, batch)
                time.sleep(tick)
        finally:
            client.close()

    def _spec(self, n: int) -> JobSpec:
        rng = self.rng
        if self.cfg.steps and rng.random() < self.cfg.steps:
            job_id = f"t{n}"
            self.history.step_jobs[job_id] = n
            seconds = round(rng.uniform(0.1, 0.5), 3)
            return JobSpec("steps", {"seed": n, "seconds": seconds}, id=job_id)
        payload: dict[str, object] = {"seconds": round(rng.uniform(0.05, 0.8), 3)}
        if rng.random() < 0.1:
            payload["fail_first"] = True
        delay = round(rng.uniform(1.0, 3.0), 2) if rng.random() < 0.1 else None
        return JobSpec("step", payload, id=f"f{n}", delay=delay)

    def _push(self, client: SyncClient, batch: list[JobSpec]) -> None:
        """Enqueue until it lands; a retry after an error that did land finds the ids taken."""
        ids = [str(spec.id) for spec in batch]
        while True:
            try:
                client.submit(batch)
                break
            except (redis.RedisError, OSError):
                self.errors += 1
                if self.stop_event.is_set():
                    # Given up at the end of the run: count only what did land.
                    ids = [i for i in ids if self._exists(client, i)]
                    break
                time.sleep(0.2)
        self.history.ids.extend(ids)
        delayed = [str(spec.id) for spec in batch if spec.delay and str(spec.id) in ids]
        if delayed:
            self._note_due(client, delayed)

    @staticmethod
    def _exists(client: SyncClient, job_id: str) -> bool:
        for _ in range(100):
            try:
                return bool(client.redis.exists(KEYS.job(job_id)))
            except (redis.RedisError, OSError):
                time.sleep(0.2)
        return True  # unknown: counted, so a loss would show

    def _note_due(self, client: SyncClient, ids: list[str]) -> None:
        for job_id in ids:
            for _ in range(100):
                try:
                    due = client.redis.hget(KEYS.job(job_id), "due_at")
                    if due is not None:
                        self.history.due[job_id] = float(due)
                    break
                except (redis.RedisError, OSError):
                    time.sleep(0.1)


class Driver:
    """Runs the faults on a timetable beside the load; `run` returns the report."""

    def __init__(self, cfg: Config, workdir: Path) -> None:
        self.cfg = cfg
        self.workdir = workdir
        self.history = History(lease=cfg.lease)
        self.slow_drains: list[str] = []
        self.rng = random.Random(cfg.seed)
        # A primary and its replica, with append-only files; a failover swaps them.
        self.servers = [
            RedisServer(workdir / "redis-a", appendonly=True),
            RedisServer(workdir / "redis-b", appendonly=True),
        ]
        self._primary = 0
        self._admins = {s.port: redis.Redis(port=s.port, socket_timeout=15) for s in self.servers}
        self.proxy = FaultProxy(self.server.port)
        self.fleet = Fleet({}, workdir, self.rng)
        self._timers: list[threading.Timer] = []
        self._n = 0

    @property
    def server(self) -> RedisServer:
        """The current primary."""
        return self.servers[self._primary]

    @property
    def replica(self) -> RedisServer:
        return self.servers[1 - self._primary]

    @property
    def admin(self) -> redis.Redis:
        """A direct client of the current primary (not through the proxy)."""
        return self._admins[self.server.port]

    def environment(self, url: str) -> dict[str, str]:
        cfg = self.cfg
        site = self.workdir / "site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        return worker_environment(
            url,
            WORKER_QUEUE=QUEUE,
            WORKER_WORKFLOWS="bench.faults.flows:WORKFLOWS",
            FAULTS_DIRECT_PORTS=",".join(str(s.port) for s in self.servers),
            WORKER_CONCURRENCY=str(cfg.concurrency),
            WORKER_LEASE_SECONDS=str(cfg.lease),
            WORKER_SHUTDOWN_TIMEOUT=str(cfg.shutdown_timeout),
            WORKER_RETRY_BACKOFF_SECONDS="0.1",
            WORKER_RETRY_BACKOFF_MAX_SECONDS="1",
            WORKER_MAX_PAYLOAD_BYTES=str(cfg.max_payload),
            WORKER_RATE_LIMITS='{"limited": {"per_second": 5}}',
            WORKER_METRICS_INTERVAL="1",
            WORKER_LOG_FORMAT="json",
            WORKER_LOG_LEVEL="WARNING",
            WORKER_LOG_FLUSH_INTERVAL="0",
            PYTHONPATH=f"{site}:{ROOT}",
        )

    def run(self) -> Report:
        began = time.monotonic()
        for server in self.servers:
            server.start()
        self._follow(self.replica, self.server)
        self.proxy.start()
        env = self.fleet.env = self.environment(self.proxy.url)
        settings = Settings.from_env(env)
        load = Load(settings, self.cfg, self.rng, self.history)
        try:
            for _ in range(self.cfg.workers):
                self.fleet.spawn()
            if self.cfg.fanout:
                self._fan_out(settings)
            load.start()
            self._timetable()
            load.stop_event.set()
            load.join()
            self._settle()
        finally:
            load.stop_event.set()
            self.fleet.close()
            self.proxy.stop()
        try:
            self.history.logs = self.fleet.logs()
            self.history.proxy_events = list(self.proxy.events)
            self.history.save(self.workdir / "history.json")
            verdict = judge(self.server.url, QUEUE, self.history)
        finally:
            for server in self.servers:
                self._admins[server.port].close()
                server.stop()
        return Report(
            verdict,
            dict(self.history.faults),
            len(self.proxy.events),
            self.slow_drains,
            time.monotonic() - began,
            self.workdir,
        )

    # -- the timetable -------------------------------------------------------------------------

    def _timetable(self) -> None:
        start = time.monotonic()
        order: list[str] = []
        next_fault = start + self.cfg.every
        # At least one full round of every fault, however slow the machine.
        while time.monotonic() < start + self.cfg.seconds or len(self.history.faults) < len(
            set(self.cfg.faults)
        ):
            if time.monotonic() >= next_fault:
                if not order:
                    order = list(self.cfg.faults)
                    self.rng.shuffle(order)
                name = order.pop()
                t = time.monotonic()
                began = time.time()
                pid = getattr(self, "fault_" + name.replace("-", "_"))()
                self._window(name, pid, began)
                self.history.faults[name] += 1
                note(f"{t - start:6.1f}s {name} ({time.monotonic() - t:.1f}s)")
                next_fault = max(next_fault + self.cfg.every, time.monotonic() + 0.5)
            time.sleep(0.1)
        for timer in self._timers:
            timer.join()

    def _window(self, name: str, pid: int | None, began: float) -> None:
        """Note when a fault acted, and on which worker when it hit one, for the checker's
        attribution of step re-runs. Faults the proxy carries out are noted by the proxy as they
        happen (its events); those that only add odd messages explain nothing."""
        lasting = {
            "stop": 2.5 * self.cfg.lease,
            "stall": 11.0,
            "memory": 4.0,
        }
        if name in ("identical", "huge", "skewed-producer", "blocked-loop") or name in PROXIED:
            return
        self.history.windows.append((name, pid or 0, began, time.time() + lasting.get(name, 0.0)))

    def _after(self, seconds: float, action: Callable[[], None]) -> None:
        """Undo a fault on time, even while another fault's injection is still retrying (a
        full Redis must be relieved however long the next injection waits for it)."""
        timer = threading.Timer(seconds, action)
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    def _settle(self) -> None:
        """Wait until every job is final and nothing is left in flight."""
        deadline = time.monotonic() + self.cfg.settle
        final = {b"success", b"failure", b"dead", b"cancelled"}
        while time.monotonic() < deadline:
            try:
                with self.admin.pipeline(transaction=False) as pipe:
                    for job_id in self.history.ids:
                        pipe.hget(KEYS.job(job_id), "state")
                    states = pipe.execute()
                left = (
                    self.admin.llen(KEYS.queue)
                    + self.admin.hlen(KEYS.processing)
                    + self.admin.zcard(KEYS.delayed)
                )
            except (redis.RedisError, OSError):
                time.sleep(0.5)
                continue
            if all(s in final for s in states) and left == 0:
                return
            time.sleep(0.5)

    # -- the faults ----------------------------------------------------------------------------

    def fault_kill(self) -> int:
        victim = self.fleet.pick()
        victim.proc.kill()
        self.history.kills[victim.proc.pid] = time.time()
        victim.proc.wait()
        self.fleet.retire(victim)
        self.fleet.spawn()
        return victim.proc.pid

    def fault_term(self) -> int:
        self.fleet.spawn()
        old = self.fleet.pick()
        began = time.time()
        old.stop(timeout=self.cfg.shutdown_timeout + DRAIN_SLACK)
        if time.time() - began > self.cfg.shutdown_timeout + DRAIN_SLACK:
            self.slow_drains.append(f"{old.log_path}: {time.time() - began:.1f}s")
        self.fleet.retire(old)
        return old.proc.pid

    def fault_stop(self) -> int:
        victim = self.fleet.pick()
        victim.proc.send_signal(signal.SIGSTOP)
        self.fleet.stopped.add(victim.proc.pid)

        def resume() -> None:
            victim.proc.send_signal(signal.SIGCONT)
            self.fleet.stopped.discard(victim.proc.pid)

        self._after(2.5 * self.cfg.lease, resume)
        return victim.proc.pid

    def fault_redis_restart(self) -> None:
        self.server.stop()
        self.server.start()

    def fault_redis_kill(self) -> None:
        self.server.stop(kill=True)
        self.server.start()

    def fault_failover(self) -> None:
        old, new = self.server, self.replica
        self._admin(
            lambda: self._admins[old.port].execute_command(  # type: ignore[no-untyped-call]
                "FAILOVER", "TO", "127.0.0.1", new.port, "TIMEOUT", 10_000
            )
        )
        deadline = time.monotonic() + 30
        while self._role(new) != "master":
            if time.monotonic() > deadline:
                raise RuntimeError("the replica was not promoted within 30 s")
            time.sleep(0.05)
        self._primary = 1 - self._primary
        self.proxy.retarget(new.port)

    def _role(self, server: RedisServer) -> str:
        try:
            return str(self._admins[server.port].info("replication").get("role", ""))
        except (redis.RedisError, OSError):
            return ""

    def _follow(self, replica: RedisServer, primary: RedisServer) -> None:
        """Make `replica` replicate `primary` and wait until it is in sync."""
        client = self._admins[replica.port]
        client.replicaof("127.0.0.1", primary.port)
        deadline = time.monotonic() + 30
        while client.info("replication").get("master_link_status") != "up":
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not sync within 30 s")
            time.sleep(0.05)

    def fault_lost_claim_replies(self) -> None:
        self.proxy.arm(Rule("EVALSHA", "drop_reply", arg=_sha("claim"), times=3))

    def fault_lost_ack_replies(self) -> None:
        self.proxy.arm(Rule("EVALSHA", "drop_reply", arg=_sha("apply"), times=3))

    def fault_late_replies(self) -> None:
        for script in ("claim", "apply"):
            self.proxy.arm(Rule("EVALSHA", "delay_reply", arg=_sha(script), seconds=11.0))

    def fault_resets(self) -> None:
        self.proxy.arm(Rule("EVALSHA", "reset", times=3))

    def fault_partition(self) -> None:
        self.proxy.partition(1.5 * self.cfg.lease)

    def fault_stall(self) -> None:
        self._admin(lambda: self.admin.client_pause(11_000, all=False))

    def fault_blocked_loop(self) -> None:
        self._n += 1
        specs = [
            JobSpec("step", {"seconds": 0.1, "block": 2.5 * self.cfg.lease}, id=f"b{self._n}-{i}")
            for i in range(2)
        ]
        self._direct_submit(specs)
        self.history.blocked.extend(str(spec.id) for spec in specs)

    def fault_identical(self) -> None:
        self._n += 1
        group = f"g{self._n}"
        message = json.dumps({"workflow": "limited", "payload": {"seconds": 0.1, "group": group}})
        self._admin(lambda: self.admin.lpush(QUEUE, *[message] * 6))
        self.history.groups[group] = 6

    def fault_huge(self) -> None:
        self._n += 1
        job_id = f"h{self._n}"
        blob = "\u0001" * (3 * self.cfg.max_payload)
        message = json.dumps({"id": job_id, "workflow": "step", "payload": {"x": blob}})
        self._admin(lambda: self.admin.lpush(QUEUE, message))
        self.history.huge.append(job_id)

    def fault_memory(self) -> None:
        # Relieved on the server that was squeezed, even if a failover swapped them meanwhile
        # (else it stays full, as a replica now and as the primary again after the next one).
        full = self.admin

        def squeeze() -> None:
            used = int(full.info("memory")["used_memory"])
            full.config_set("maxmemory", used + (2 << 20))

        self._admin(squeeze)
        self._after(4.0, lambda: self._admin(lambda: full.config_set("maxmemory", 0)))

    def fault_skewed_producer(self) -> None:
        self._n += 1
        env = {**self.fleet.env, "FAULTS_CLOCK_SKEW": str(-SKEW)}
        code = (
            "import json, sys\n"
            "from workflow_worker.producer.client import JobSpec, SyncClient\n"
            "from workflow_worker.settings import Settings\n"
            "n, queue = sys.argv[1], sys.argv[2]\n"
            "with SyncClient(Settings.from_env()) as client:\n"
            "    ids = client.enqueue_many(\n"
            "        [JobSpec('step', {'seconds': 0.1}, id=f's{n}-{i}', delay=1.0 + i / 4)\n"
            "         for i in range(5)])\n"
            "    due = [client.redis.hget(client.keys.job(i), 'due_at') for i in ids]\n"
            "print(json.dumps({i: float(d) for i, d in zip(ids, due) if d}))\n"
        )
        env["REDIS_URL"] = self.server.url
        done = subprocess.run(
            [sys.executable, "-c", code, str(self._n), QUEUE],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            note(f"skewed producer failed: {done.stderr[-500:]}")
            return
        due = json.loads(done.stdout)
        self.history.ids.extend(due)
        self.history.due.update(due)

    def _admin(self, action: Callable[[], object]) -> None:
        """Run an injection against Redis until it lands (Redis may be restarting, paused or
        full because of an earlier fault)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                action()
                return
            except (redis.RedisError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _fan_out(self, settings: Settings) -> None:
        """One group of `fanout` slow-ish members and a callback, through the proxy; asked
        again until it lands (a group is created once per id, so asking again is safe)."""
        gid = "fanout"
        members = [
            JobSpec("step", {"seconds": round(self.rng.uniform(0.2, 1.2), 3)})
            for _ in range(self.cfg.fanout)
        ]
        with SyncClient(settings) as client:
            for _ in range(100):
                try:
                    client.group(members, then=JobSpec("gather"), id=gid)
                    break
                except (redis.RedisError, OSError):
                    time.sleep(0.2)
        self.history.ids.extend([f"{gid}.{n}" for n in range(self.cfg.fanout)] + [gid])
        self.history.fanouts[gid] = self.cfg.fanout

    def _direct_submit(self, specs: list[JobSpec]) -> None:
        settings = Settings.from_env(self.fleet.env, redis_url=self.server.url)
        with SyncClient(settings) as client:
            for _ in range(100):
                try:
                    client.submit(specs)
                    break
                except (redis.RedisError, OSError):
                    time.sleep(0.2)
        self.history.ids.extend(str(spec.id) for spec in specs)


def run_faults(cfg: Config, workdir: Path) -> Report:
    workdir.mkdir(parents=True, exist_ok=True)
    return Driver(cfg, workdir).run()
