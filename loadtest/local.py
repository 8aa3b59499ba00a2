"""The local target: an embedded Redis (or REDIS_URL) and N worker processes in benchmark mode,
detached so they keep running between `start`, `status` and `stop`."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from prometheus_client.parser import text_string_to_metric_families

from loadtest import drain, procs
from loadtest.config import MARKER, ROOT, WORKFLOW, LoadTestConfig
from loadtest.state import ProcessRecord, RunState, load, remove, save
from loadtest.view import Snapshot
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.local.devstack import RedisServer, free_port, worker_environment
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings

__all__ = ["LocalTarget", "metrics_totals"]

ENDED = ("success", "failure", "dead", "cancelled")
LUA = (Path(__file__).parent / "drop_marked-2.lua").read_text()
BATCH = 1000


def metrics_totals(port: int) -> dict[str, float] | None:
    """Jobs ended (by status) and running, from one worker's /metrics; None if unreachable."""
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "workflow_jobs_total":
                key = sample.labels.get("status", "")
                totals[key] = totals.get(key, 0.0) + sample.value
            elif sample.name == "workflow_jobs_active":
                totals["active"] = totals.get("active", 0.0) + sample.value
    return totals


def _ready(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/readyz"
        with urllib.request.urlopen(url, timeout=1) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


class LocalTarget:
    """start/status/stop against processes on this machine."""

    def __init__(self, config: LoadTestConfig, out: TextIO = sys.stdout) -> None:
        self.config = config
        self.out = out
        self.logs = config.state_dir / "logs"

    # -- settings -------------------------------------------------------------------------------

    def _worker_env(self, redis_url: str, port: int) -> dict[str, str]:
        cfg = self.config
        passed = {k: v for k, v in cfg.environ.items() if k.startswith("WORKER_")}
        passed.update(
            WORKER_BENCHMARK_MODE="1",
            WORKER_BENCHMARK_MIN_SECONDS=f"{cfg.benchmark_min:g}",
            WORKER_BENCHMARK_MAX_SECONDS=f"{cfg.benchmark_max:g}",
            WORKER_HTTP_PORT=str(port),
            WORKER_LOG_FORMAT=passed.get("WORKER_LOG_FORMAT", "json"),
        )
        env = worker_environment(redis_url, **passed)
        if cfg.redis_url:
            # An outside Redis may need its credentials, mode and TLS files as well.
            env.update({k: v for k, v in cfg.environ.items() if k.startswith("REDIS_")})
            env["REDIS_URL"] = redis_url
        return env

    def settings(self, state: RunState) -> Settings:
        env = {**self.config.environ, "REDIS_URL": state.redis_url, "WORKER_QUEUE": state.queue}
        return Settings.from_env(env)

    # -- start ----------------------------------------------------------------------------------

    def _start_redis(self) -> tuple[str, ProcessRecord | None]:
        if self.config.redis_url:
            return self.config.redis_url, None
        server = RedisServer(self.config.state_dir / "redis")
        proc = procs.spawn_detached(
            server.args(), dict(self.config.environ), server.data_dir / "server.log", ROOT
        )
        record = ProcessRecord(proc.pid, Path(server.binary).name, server.port)
        try:
            server.wait_ready()
        except TimeoutError:
            procs.terminate(record.pid, record.marker, 5)
            raise
        return server.url, record

    def _start_worker(self, index: int, redis_url: str) -> ProcessRecord:
        port = free_port()
        log = self.logs / f"worker-{index}.log"
        argv = [sys.executable, "-m", "workflow_worker", "run"]
        proc = procs.spawn_detached(argv, self._worker_env(redis_url, port), log, ROOT)
        return ProcessRecord(proc.pid, "worker", port, str(log))

    def _wait_ready(self, worker: ProcessRecord, timeout: float = 60.0) -> None:
        deadline, log = time.monotonic() + timeout, worker.log
        while not _ready(worker.port):
            if not procs.alive(worker.pid, worker.marker):
                tail = Path(worker.log).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"worker {worker.pid} exited during start-up:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {worker.pid} not ready after {timeout:g}s: see {log}")
            time.sleep(0.05)

    def boot(self) -> RunState:
        """Start Redis (unless REDIS_URL) and the workers; returns the saved state."""
        url, redis_record = self._start_redis()
        queue = self.config.environ.get("WORKER_QUEUE") or Settings().queue
        state = RunState("local", run_id=f"{time.time():.0f}", queue=queue, redis_url=url)
        state.redis = redis_record
        save(self.config.state_file, state)
        try:
            for index in range(self.config.workers):
                state.workers.append(self._start_worker(index, url))
                save(self.config.state_file, state)
            for worker in state.workers:
                self._wait_ready(worker)
        except BaseException:
            self._shutdown(state)
            raise
        return state

    def running(self) -> RunState | None:
        """The recorded local run if all of its processes still run; a broken one is cleaned."""
        state = load(self.config.state_file)
        if state is None:
            return None
        if state.target != "local":
            raise RuntimeError(f"a {state.target} load test is recorded; run load-test-stop first")
        parts = [*state.workers, *([state.redis] if state.redis else [])]
        if all(procs.alive(p.pid, p.marker) for p in parts):
            return state
        print("the recorded local stack is gone or broken: starting a new one", file=self.out)
        self._shutdown(state)
        return None

    def push(self, state: RunState, jobs: int) -> None:
        with SyncClient(self.settings(state)) as client:
            for first in range(0, jobs, BATCH):
                size = min(BATCH, jobs - first)
                specs = [
                    JobSpec(WORKFLOW, {MARKER: True, "run": state.run_id, "n": state.pushed + i})
                    for i in range(size)
                ]
                client.enqueue_many(specs)
                state.pushed += size
                save(self.config.state_file, state)

    def start(self, jobs: int) -> int:
        state = self.running()
        if state is None:
            state = self.boot()
            lo, hi = self.config.benchmark_min, self.config.benchmark_max
            print(
                f"started {len(state.workers)} workers in benchmark mode ({lo:g}-{hi:g}s per "
                f"job) on {state.redis_url}",
                file=self.out,
            )
        self.push(state, jobs)
        print(f"pushed {jobs} jobs ({state.pushed} in this run) onto {state.queue}", file=self.out)
        return 0

    # -- status ---------------------------------------------------------------------------------

    def snapshot(self, state: RunState) -> Snapshot:
        keys = QueueKeys.for_queue(state.queue)
        with (
            SyncClient(self.settings(state)) as client,
            client.redis.pipeline(transaction=False) as pipe,
        ):
            pipe.llen(keys.queue)
            pipe.hlen(keys.processing)
            pipe.zcard(keys.delayed)
            pipe.llen(keys.dead)
            sizes: list[Any] = pipe.execute()
        return self._with_metrics(state, sizes)

    def _with_metrics(self, state: RunState, sizes: list[Any]) -> Snapshot:
        queued, inflight, delayed, dead = (int(x) for x in sizes)
        alive = [w for w in state.workers if procs.alive(w.pid, w.marker)]
        scraped = [metrics_totals(w.port) for w in alive]
        totals = [t for t in scraped if t is not None]
        ended = int(sum(t.get(s, 0.0) for t in totals for s in ENDED))
        return Snapshot(
            target="local",
            where=state.redis_url.split("@")[-1],
            queue=state.queue,
            pushed=state.pushed,
            done=min(ended, state.pushed),
            queued=queued,
            inflight=inflight,
            delayed=delayed,
            dead=dead,
            active=int(sum(t.get("active", 0.0) for t in totals)),
            pods=len(alive),
            pods_ready=len(totals),
            pods_desired=len(state.workers),
            elapsed=time.time() - state.started_at,
            notes=[f"worker pid {w.pid}  http://127.0.0.1:{w.port}/metrics" for w in alive],
        )

    # -- stop -----------------------------------------------------------------------------------

    def drain(self, state: RunState, timeout: float) -> dict[str, int]:
        """Drop waiting load-test jobs; wait up to `timeout` for running ones to end."""
        keys = QueueKeys.for_queue(state.queue)
        with SyncClient(self.settings(state)) as client:
            counts = drain.drop(client.redis, keys, LUA)
            print(
                f"removed {counts['dropped_queued']} waiting and {counts['dropped_delayed']} "
                "delayed load-test jobs",
                file=self.out,
            )
            deadline = time.monotonic() + timeout
            while counts["inflight_marked"] and time.monotonic() < deadline:
                time.sleep(0.2)
                counts = drain.count(client.redis, keys)
        if counts["inflight_marked"]:
            print(
                f"{counts['inflight_marked']} load-test jobs still running after {timeout:g}s; "
                "the workers' SIGTERM drain gets them",
                file=self.out,
            )
        return counts

    def _shutdown(self, state: RunState) -> None:
        for worker in state.workers:
            result = procs.terminate(worker.pid, worker.marker, timeout=60)
            print(f"worker pid {worker.pid}: {result}", file=self.out)
        if state.redis is not None:
            result = procs.terminate(state.redis.pid, state.redis.marker, timeout=10)
            print(f"redis pid {state.redis.pid}: {result}", file=self.out)
        remove(self.config.state_file)

    def stop(self, timeout: float) -> int:
        state = load(self.config.state_file)
        if state is None:
            print("no local load test is recorded: nothing to stop", file=self.out)
            return 0
        try:
            self.drain(state, timeout)
        except Exception as exc:  # stopping the processes matters more than the drain
            print(f"could not drain ({type(exc).__name__}: {exc}); stopping anyway", file=self.out)
        self._shutdown(state)
        print(f"stopped; worker logs are in {self.logs}", file=self.out)
        return 0
