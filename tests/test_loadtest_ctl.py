"""`python -m loadtest.ctl` against the local target: real Redis, real worker processes."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from loadtest import procs
from loadtest.slo import Gates, Observed, violations
from loadtest.view import CLEAR, Snapshot, bar, watch
from tests.loadtest_helpers import ROOT, clean_env, recorded_processes, run_module, state_dir
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings

__all__ = ["state_dir"]

QUICK = {"WORKER_BENCHMARK_MIN_SECONDS": "0.1", "WORKER_BENCHMARK_MAX_SECONDS": "0.3"}


def test_start_status_stop_with_embedded_redis(state_dir: Path) -> None:
    """start boots an embedded Redis and two benchmark workers that outlive the command and pushes
    the jobs; status shows them all done; stop ends every process and removes the state file."""
    env = clean_env(state_dir, **QUICK)
    started = run_module("loadtest.ctl", "start", "30", env=env)
    assert started.returncode == 0, started.stderr
    assert "pushed 30 jobs" in started.stdout
    running = recorded_processes(state_dir)
    assert len(running) == 3
    assert all(procs.alive(pid, marker) for pid, marker in running)

    frame = run_module("loadtest.ctl", "status", "--once", env=env)
    assert frame.returncode == 0, frame.stderr
    assert "done/pushed" in frame.stdout
    assert "pods            2 (ready 2, desired 2)" in frame.stdout
    assert CLEAR not in frame.stdout

    piped = run_module("loadtest.ctl", "status", env=env, timeout=30)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.count("load test  target=local") == 1
    assert CLEAR not in piped.stdout

    screen, code = _status_on_a_terminal(env)
    assert screen.count(CLEAR) >= 2, screen
    assert code == 0

    until = run_module(
        "loadtest.ctl", "status", "--until-done", "--interval", "0.2", env=env, timeout=90
    )
    assert until.returncode == 0, until.stderr
    last = until.stdout.rsplit("load test  target=local", 1)[-1]
    assert "30/30" in last
    assert "100%" in last

    stopped = run_module("loadtest.ctl", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert not (state_dir / "state.json").exists()
    assert not any(procs.alive(pid, marker) for pid, marker in running)


def _status_on_a_terminal(env: dict[str, str]) -> tuple[str, int]:
    """`status` with a pseudo-terminal as its output, read until it has redrawn twice, then
    Ctrl-C: what it wrote and its exit code."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtest.ctl", "status", "--interval", "0.2"],
        env=env,
        cwd=ROOT,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 30
    try:
        while screen.count(CLEAR.encode()) < 2 and time.monotonic() < deadline:
            if select.select([leader], [], [], 1)[0]:
                screen += os.read(leader, 65536)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    return screen.decode(errors="replace"), code


def test_stop_drops_only_load_test_jobs(state_dir: Path, redis_url: str) -> None:
    """With REDIS_URL set, stop removes the waiting load-test jobs, keeps every other job (still
    queued or run), waits for the running ones and leaves the outside Redis up."""
    env = clean_env(
        state_dir,
        REDIS_URL=redis_url,
        LOADTEST_WORKERS="1",
        WORKER_CONCURRENCY="1",
        WORKER_BENCHMARK_MIN_SECONDS="1",
        WORKER_BENCHMARK_MAX_SECONDS="1",
    )
    started = run_module("loadtest.ctl", "start", "20", env=env)
    assert started.returncode == 0, started.stderr
    settings = Settings(redis_url=redis_url)
    keys = QueueKeys.for_queue(settings.queue)
    with SyncClient(settings) as client:
        others = client.enqueue_many([JobSpec("noop", {"n": i}) for i in range(3)])

        stopped = run_module("loadtest.ctl", "stop", "--timeout", "20", env=env)
        assert stopped.returncode == 0, stopped.stderr
        removed = re.search(r"removed (\d+) waiting", stopped.stdout)
        assert removed is not None, stopped.stdout
        assert 10 <= int(removed.group(1)) <= 20  # the one worker holds one job at a time
        queued = [json.loads(raw) for raw in client.redis.lrange(keys.queue, 0, -1)]
        assert not [job for job in queued if job["workflow"] == "loadtest"]
        waiting = {job["id"] for job in queued}
        for job_id in others:
            record = client.status(job_id) or {}
            assert job_id in waiting or record.get("state") == "success", record
        assert client.redis.hlen(keys.processing) == 0
    with redis.Redis.from_url(redis_url) as outside:
        assert outside.ping()


def test_status_without_a_run_and_bad_target(state_dir: Path) -> None:
    """status with nothing started says so and exits 1; an unknown TARGET is a configuration
    error naming the variable."""
    none = run_module("loadtest.ctl", "status", "--once", env=clean_env(state_dir))
    assert none.returncode == 1
    assert "no load test is running" in none.stdout
    bad = run_module("loadtest.ctl", "start", "1", env=clean_env(state_dir, TARGET="moon"))
    assert bad.returncode == 2
    assert "TARGET='moon'" in bad.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_view_redraws_in_place_on_a_terminal() -> None:
    """On a terminal each frame starts by homing the cursor and clearing the screen, and the
    progress bar fills with the share of pushed jobs done."""
    snap = Snapshot("local", "redis://x", "q", pushed=200, done=50, queued=100, inflight=50)
    out = _Terminal()
    watch(lambda: snap, out, once=True)
    assert out.getvalue().startswith(CLEAR)
    assert bar(50, 200, width=8) == "[##......]     50/200     25%"
    assert "in flight          50" in out.getvalue()


def test_slo_gates_name_each_missed_limit() -> None:
    """Each gate reports its own miss: failure ratio, too few completions, p95 end-to-end and p95
    enqueue latency; a run within every limit passes."""
    gates = Gates(max_failure_ratio=0.01, p95_e2e_ms=1000, p95_enqueue_ms=50, min_completed=5)
    good = Observed(requests=100, failures=1, completed=50, p95_e2e_ms=900, p95_enqueue_ms=10)
    assert violations(gates, good) == []
    bad = Observed(requests=100, failures=5, completed=2, p95_e2e_ms=1500, p95_enqueue_ms=80)
    missed = violations(gates, bad)
    assert len(missed) == 4
    assert missed[0].startswith("failure ratio 5.00%")
