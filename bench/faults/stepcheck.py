"""Judges the jobs of the durable-steps workflow (`flows.steps`) after a fault run.

For each such job, from its status record, its steps hash and the tally of every execution of
every step (`faults:steps:<id>`, written past the fault proxy, one run id per execution):

- wrong: not a success, or its values differ from the undisturbed ones (`step_values`), or a
  recorded step's run is not one the tally saw end;
- sleep wrong: the step after the sleep started before the sleep was over (by the server's
  clock, from the end of the step before it), or more than a minute late;
- re-runs: every execution of a step other than the one whose result was recorded. Each must be
  explained by a fault that acted while it ran or while its result was being recorded: a kill,
  stop, SIGTERM drain or blocked event loop of *its* worker process, or a fault of Redis or of
  the network that every worker shares (a Redis restart or kill, a failover, a write pause, a
  full Redis, a partition, a reply held past the socket timeout). The window of an execution
  runs from its start to its end (or cancellation, or its worker's SIGKILL) plus the time a
  record may take (its retries); a fault's from its start to its end plus two leases (the time
  a worker needs to learn its claim was taken back). A lost or reset reply is not an
  explanation (the worker sends again and the record is idempotent), nor is anything else: a
  re-run no fault accounts for is reported as unexplained.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from bench.faults.flows import STEP_NAMES, STEP_PAUSE, STEPS_PREFIX, step_values
from workflow_worker.engine.keys import QueueKeys

if TYPE_CHECKING:
    from bench.faults.checker import Execution, History

__all__ = ["StepRun", "StepVerdict", "judge_steps"]

# A step's record is retried for about 3 s while Redis is unreachable (workflows/steps.py).
RECORD_SLACK = 4.0
# An execution that left neither an end nor a cancellation, and whose worker was not killed.
UNENDED = 30.0
# A sleep whose next step starts later than this after it should have ended is wrong.
SLEEP_LATE = 60.0
# Faults of a worker process (matched by pid) and faults every worker shares.
PROCESS_FAULTS = ("kill", "stop", "term", "blocked-loop")
SHARED_FAULTS = ("redis-restart", "redis-kill", "failover", "stall", "memory")
# Proxy events that explain a re-run, with how long each acts (None: its own length).
PROXY_EXPLAINS: dict[str, float | None] = {"partition": None, "delay_reply": 11.0}


@dataclass
class StepRun:
    """One execution of one step of one job, from the tally."""

    step: str
    run: str
    pid: int
    start: float
    end: float | None = None
    cancelled: float | None = None


@dataclass
class StepVerdict:
    jobs: int = 0
    wrong: list[str] = field(default_factory=list)
    sleep_wrong: list[str] = field(default_factory=list)
    run: int = 0
    recorded: int = 0
    replayed: int = 0
    reruns: int = 0
    explained: Counter[str] = field(default_factory=Counter)
    unexplained: list[str] = field(default_factory=list)
    # How lenient the shared explanations are: seconds they cover, of the steps' whole span.
    shared_s: float = 0.0
    span_s: float = 0.0

    def ok(self) -> bool:
        return not (self.wrong or self.sleep_wrong or self.unexplained)

    def rows(self) -> list[tuple[str, object]]:
        by = ", ".join(f"{name} {n}" for name, n in self.explained.most_common())
        return [
            ("step jobs (5 steps and a sleep each)", self.jobs),
            ("  wrong (not a success, or not the undisturbed result)", len(self.wrong)),
            ("  sleeps cut short or overlong", len(self.sleep_wrong)),
            ("  step executions", self.run),
            ("  steps recorded", self.recorded),
            ("  steps replayed (recorded result returned)", self.replayed),
            ("  step re-runs (executions beyond the recorded one)", self.reruns),
            ("    explained by a fault in their window", sum(self.explained.values())),
            ("    by fault (first match)", by or "-"),
            ("    unexplained", len(self.unexplained)),
            (
                "  time inside a shared fault's window (s, of the steps' span)",
                f"{self.shared_s:.0f} of {self.span_s:.0f}",
            ),
        ]


def judge_steps(
    client: redis.Redis, keys: QueueKeys, history: History, runs: dict[str, list[Execution]]
) -> StepVerdict:
    verdict = StepVerdict(jobs=len(history.step_jobs))
    if not history.step_jobs:
        return verdict
    windows = _windows(history, runs)
    grace = 2 * history.lease
    verdict.shared_s = shared_cover(windows, grace)
    first, last = float("inf"), float("-inf")
    ids = list(history.step_jobs)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        with client.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.hmget(keys.job(job_id), ["state", "result"])
                pipe.lrange(STEPS_PREFIX + job_id, 0, -1)
            replies = pipe.execute()
        for n, job_id in enumerate(chunk):
            (state, result), lines = replies[2 * n], replies[2 * n + 1]
            _judge_job(verdict, job_id, history, state, result, lines, windows, grace)
            stamps = [json.loads(line)["t"] for line in lines[:1] + lines[-1:]]
            first, last = min([first, *stamps]), max([last, *stamps])
    verdict.span_s = max(0.0, last - first)
    return verdict


def _judge_job(
    verdict: StepVerdict,
    job_id: str,
    history: History,
    state: bytes | None,
    result: bytes | None,
    lines: list[bytes],
    windows: list[tuple[str, int, float, float]],
    grace: float,
) -> None:
    by_step, replays = _fold(lines)
    verdict.replayed += replays
    verdict.run += sum(len(r) for r in by_step.values())
    out: dict[str, Any] = json.loads(result) if result else {}
    names = [s for s in STEP_NAMES if s != "pause"]
    recorded_runs = list(out.get("runs") or [])
    if (
        state != b"success"
        or out.get("values") != step_values(history.step_jobs[job_id])
        or len(recorded_runs) != len(names)
    ):
        verdict.wrong.append(job_id)
        recorded_runs = [None] * len(names)  # judge every execution as a re-run
    for name, kept in zip(names, recorded_runs, strict=True):
        step_runs = by_step.get(name, {})
        if kept is not None:
            verdict.recorded += 1
            if kept not in step_runs or step_runs[kept].end is None:
                verdict.wrong.append(f"{job_id}/{name}: recorded run {kept} never ended")
        for run in step_runs.values():
            if run.run == kept:
                continue
            verdict.reruns += 1
            cause = _cause(run, windows, history.kills, grace)
            if cause:
                verdict.explained[cause] += 1
            else:
                verdict.unexplained.append(f"{job_id}/{name}/{run.run}@{run.pid}")
    if state == b"success":
        _judge_sleep(verdict, job_id, by_step, recorded_runs)


def _judge_sleep(
    verdict: StepVerdict,
    job_id: str,
    by_step: dict[str, dict[str, StepRun]],
    recorded_runs: list[str | None],
) -> None:
    before = by_step.get("s2", {}).get(str(recorded_runs[1]))
    after = by_step.get("s3", {})
    if before is None or before.end is None or not after:
        return
    first = min(r.start for r in after.values())
    late = first - (before.end + STEP_PAUSE)
    if late < -0.05 or late > SLEEP_LATE:
        verdict.sleep_wrong.append(f"{job_id}: next step {late:+.2f}s after the sleep's end")


def _fold(lines: list[bytes]) -> tuple[dict[str, dict[str, StepRun]], int]:
    by_step: dict[str, dict[str, StepRun]] = defaultdict(dict)
    replays = 0
    for raw in lines:
        ev = json.loads(raw)
        if ev["ev"] == "replay":
            replays += 1
            continue
        runs = by_step[ev["step"]]
        run = runs.get(ev["run"])
        if run is None:
            run = runs[ev["run"]] = StepRun(ev["step"], ev["run"], ev["pid"], ev["t"])
        if ev["ev"] == "start":
            run.start = min(run.start, ev["t"])
        elif ev["ev"] == "end":
            run.end = ev["t"] if run.end is None else min(run.end, ev["t"])
        elif ev["ev"] == "cancel":
            run.cancelled = ev["t"]
    return by_step, replays


def _windows(
    history: History, runs: dict[str, list[Execution]]
) -> list[tuple[str, int, float, float]]:
    """Every fault that can interrupt a step, as (name, pid or 0 for all, began, ended)."""
    out = [w for w in history.windows if w[0] in PROCESS_FAULTS + SHARED_FAULTS]
    for at, action, what in history.proxy_events:
        if action not in PROXY_EXPLAINS:
            continue
        length = PROXY_EXPLAINS[action]
        if length is None:
            length = float(what.rstrip("s"))
        out.append((action.replace("_", "-"), 0, at, at + length))
    # A blocked event loop: from the blocking job's start to its end, on its worker.
    for job_id in history.blocked:
        for e in runs.get(job_id, []):
            out.append(("blocked-loop", e.pid, e.start, e.end or e.cancelled or e.start + 60))
    # A fault of the execution's own worker is the likelier cause: tried first.
    return sorted(out, key=lambda w: (w[1] == 0, w[2]))


def shared_cover(windows: list[tuple[str, int, float, float]], grace: float) -> float:
    """Seconds during which a fault shared by every worker could explain a re-run that
    started then (the union of their windows, widened as `_cause` widens them)."""
    spans = sorted((a - RECORD_SLACK, b + grace) for _, pid, a, b in windows if not pid)
    total, reach = 0.0, float("-inf")
    for a, b in spans:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def _cause(
    run: StepRun,
    windows: list[tuple[str, int, float, float]],
    kills: dict[int, float],
    grace: float,
) -> str:
    """The first fault whose window meets the execution's, or "" when none does."""
    killed = kills.get(run.pid)
    ended = run.end if run.end is not None else run.cancelled
    if ended is None:
        if killed is not None and killed >= run.start:
            return "kill"
        ended = run.start + UNENDED
    last = ended + RECORD_SLACK
    for name, pid, began, until in windows:
        if pid and pid != run.pid:
            continue
        if began <= last and run.start <= until + grace:
            return name
    return ""
