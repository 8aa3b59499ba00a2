"""Reads every job's history after a fault run and judges it.

A job's history is its status record, its execution records (`flows.py`: start, end, cancel,
fail, each stamped with the server's clock, pid and attempt), the dead-letter list, and what is
left in the queue, the processing hash and the delayed set. The worker logs say which completions
a worker flagged as duplicates (`job finished after its claim was taken back`).

The verdicts:
- lost: enqueued (its status record exists) but neither final nor dead-lettered;
- stuck: anything left in the queue, the processing hash or the delayed set after the settle;
- uncounted duplicate: a job that completed more than once where an extra completion is neither
  flagged by a worker nor explained by its worker being killed after the job ended (before the
  acknowledgement could land);
- id-less groups: identical messages without an id must complete at least as many times as
  they were pushed;
- early: a delayed job that started before the due time the server computed;
- huge: every oversized message dead-lettered whole, its record final;
- fan-out: a group's callback (docs/composition.md) ran, with every member's outcome in member
  order, and the group counted every member (its extra runs, if any, are judged as duplicates
  above: an enqueue of the callback twice would be an uncounted duplicate);
- steps: jobs of the durable-steps workflow, judged step by step in `stepcheck.py`.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.faults.flows import FANOUT_PREFIX, RECORD_PREFIX
from bench.faults.stepcheck import StepVerdict, judge_steps
from workflow_worker.engine.keys import QueueKeys

__all__ = ["Execution", "History", "Verdict", "judge"]

FINAL = {b"success", b"failure", b"dead", b"cancelled"}
DUPLICATE_LOG = "job finished after its claim was taken back"


@dataclass
class Execution:
    """One run of a job on one worker process, from its records."""

    job: str
    run: str
    pid: int
    attempt: int
    start: float
    end: float | None = None
    cancelled: float | None = None
    failed: float | None = None


@dataclass
class History:
    """What the run did besides the jobs: faults by time, for the checker's attributions."""

    ids: list[str] = field(default_factory=list)
    due: dict[str, float] = field(default_factory=dict)
    huge: list[str] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)
    kills: dict[int, float] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    logs: list[Path] = field(default_factory=list)
    # Fan-out groups: group id (also its callback's) -> number of members.
    fanouts: dict[str, int] = field(default_factory=dict)
    # Jobs of the durable-steps workflow: job id -> seed.
    step_jobs: dict[str, int] = field(default_factory=dict)
    # Faults that acted on the fleet or on Redis: (name, pid or 0 for all, began, ended).
    windows: list[tuple[str, int, float, float]] = field(default_factory=list)
    # What the proxy did, when: (time, action, command or length).
    proxy_events: list[tuple[float, str, str]] = field(default_factory=list)
    # Jobs that block their worker's event loop (the blocked-loop fault).
    blocked: list[str] = field(default_factory=list)
    lease: float = 2.0

    def save(self, path: Path) -> None:
        """Keep what the checker needs beside the run's data (to judge it again later)."""
        data = {
            "ids": self.ids,
            "due": self.due,
            "huge": self.huge,
            "groups": self.groups,
            "kills": {str(pid): t for pid, t in self.kills.items()},
            "faults": dict(self.faults),
            "logs": [str(p) for p in self.logs],
            "fanouts": self.fanouts,
            "step_jobs": self.step_jobs,
            "windows": self.windows,
            "proxy_events": self.proxy_events,
            "blocked": self.blocked,
            "lease": self.lease,
        }
        path.write_text(json.dumps(data))

    @classmethod
    def load(cls, path: Path) -> History:
        data = json.loads(path.read_text())
        return cls(
            ids=data["ids"],
            due=data["due"],
            huge=data["huge"],
            groups=data["groups"],
            kills={int(pid): t for pid, t in data["kills"].items()},
            faults=Counter(data["faults"]),
            logs=[Path(p) for p in data["logs"]],
            fanouts=data.get("fanouts", {}),
            step_jobs=data.get("step_jobs", {}),
            windows=[tuple(w) for w in data.get("windows", [])],
            proxy_events=[tuple(e) for e in data.get("proxy_events", [])],
            blocked=data.get("blocked", []),
            lease=data.get("lease", 2.0),
        )


@dataclass
class Verdict:
    """The judgement: every list must be empty for the run to pass."""

    jobs: int
    completed: int
    dead_lettered: int
    lost: list[str]
    stuck: dict[str, int]
    duplicates: int
    flagged: int
    killed_before_ack: int
    uncounted: list[str]
    reruns: int
    short_groups: list[str]
    early: list[str]
    huge_wrong: list[str]
    executions: int
    worst_kill_redelivery: float = 0.0
    fanout_wrong: list[str] = field(default_factory=list)
    steps: StepVerdict = field(default_factory=StepVerdict)

    def ok(self) -> bool:
        return not (
            self.lost
            or any(self.stuck.values())
            or self.uncounted
            or self.short_groups
            or self.early
            or self.huge_wrong
            or self.fanout_wrong
            or not self.steps.ok()
        )

    def rows(self) -> list[tuple[str, object]]:
        return [
            ("jobs enqueued (with ids)", self.jobs),
            ("completed or final", self.completed),
            ("dead-lettered", self.dead_lettered),
            ("lost", len(self.lost)),
            ("stuck (left in queue, processing or delayed)", sum(self.stuck.values())),
            ("executions recorded", self.executions),
            ("re-runs (an attempt run again: re-delivered, requeued)", self.reruns),
            ("jobs completed twice", self.duplicates),
            ("  flagged by their worker (metric and log)", self.flagged),
            ("  worker killed after the end, before the ack", self.killed_before_ack),
            ("uncounted duplicates", len(self.uncounted)),
            ("id-less groups short of completions", len(self.short_groups)),
            ("delayed jobs started early", len(self.early)),
            ("oversized messages not dead-lettered whole", len(self.huge_wrong)),
            ("worst redelivery after a SIGKILL (s)", f"{self.worst_kill_redelivery:.2f}"),
            ("fan-out callbacks missing, short or out of order", len(self.fanout_wrong)),
            *(self.steps.rows() if self.steps.jobs else []),
        ]


def _fold(job: str, lines: list[bytes]) -> list[Execution]:
    runs: dict[str, Execution] = {}
    for raw in lines:
        ev = json.loads(raw)
        run = runs.get(ev["run"])
        if run is None:
            run = runs[ev["run"]] = Execution(job, ev["run"], ev["pid"], ev["attempt"], ev["t"])
        if ev["ev"] == "end":
            run.end = ev["t"]
        elif ev["ev"] == "cancel":
            run.cancelled = ev["t"]
        elif ev["ev"] == "fail":
            run.failed = ev["t"]
    for run in runs.values():
        if run.end is not None and run.cancelled is not None:
            # Cancelled while recording its end: the workflow never returned.
            run.end = None
    return sorted(runs.values(), key=lambda e: e.start)


def _records(client: redis.Redis, ids: list[str]) -> dict[str, list[Execution]]:
    out: dict[str, list[Execution]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        with client.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.lrange(RECORD_PREFIX + job_id, 0, -1)
            for job_id, lines in zip(chunk, pipe.execute(), strict=True):
                out[job_id] = _fold(job_id, lines)
    return out


def _fields(client: redis.Redis, keys: QueueKeys, ids: list[str], *names: str) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(ids), 500):
        with client.pipeline(transaction=False) as pipe:
            for job_id in ids[start : start + 500]:
                pipe.hmget(keys.job(job_id), list(names))
            out += pipe.execute()
    return out


def _flagged(logs: list[Path]) -> Counter[str]:
    """Completions each job's workers flagged as duplicates, from their JSON log lines."""
    out: Counter[str] = Counter()
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            if DUPLICATE_LOG not in line:
                continue
            try:
                out[str(json.loads(line).get("job_id"))] += 1
            except ValueError:
                continue
    return out


def _dead_ids(client: redis.Redis, keys: QueueKeys) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in client.lrange(keys.dead, 0, -1):
        entry = json.loads(item)
        job_id = entry.get("job_id")
        if not job_id:
            try:
                job_id = json.loads(entry["job"]).get("id")
            except (ValueError, KeyError, AttributeError):
                job_id = None
        if job_id:
            out[str(job_id)] = entry
    return out


def _explained(runs: list[Execution], flagged: int, kills: dict[int, float]) -> tuple[int, int]:
    """(extra completions explained by kills, extra completions left unexplained).

    Each completion after the first needs a reason: a completion its worker flagged as a
    duplicate, or the previous completion's worker killed after that completion ended and
    before this one started (its acknowledgement never landed, so the job was re-delivered).
    """
    ended = [e for e in runs if e.end is not None]
    by_kill = left = 0
    for before, after in itertools.pairwise(ended):
        killed = kills.get(before.pid)
        assert before.end is not None
        if killed is not None and before.end <= killed <= after.start:
            by_kill += 1
        elif flagged > 0:
            flagged -= 1
        else:
            left += 1
    return by_kill, left


def judge(url: str, queue: str, history: History) -> Verdict:
    keys = QueueKeys.for_queue(queue)
    with redis.Redis.from_url(url) as client:
        ids = history.ids
        states = [row[0] for row in _fields(client, keys, ids, "state")]
        runs = _records(client, ids)
        dead = _dead_ids(client, keys)
        stuck = {
            "queue": int(client.llen(keys.queue)),
            "processing": int(client.hlen(keys.processing)),
            "delayed": int(client.zcard(keys.delayed)),
        }
        group_ends = _group_completions(client)
        huge_wrong = _huge(client, keys, history.huge, dead)
        fanout_wrong = _fanouts(client, keys, history.fanouts)
        step_verdict = judge_steps(client, keys, history, runs)
    flagged = _flagged(history.logs)
    early = _early(history, runs)
    lost = [j for j, s in zip(ids, states, strict=True) if s not in FINAL and j not in dead]
    duplicates = killed = counted = 0
    uncounted: list[str] = []
    for job_id, job_runs in runs.items():
        if sum(e.end is not None for e in job_runs) < 2:
            continue
        duplicates += 1
        counted += 1 if flagged[job_id] else 0
        by_kill, left = _explained(job_runs, flagged[job_id], history.kills)
        killed += by_kill
        if left:
            uncounted.append(job_id)
    short = [g for g, n in history.groups.items() if group_ends.get(g, 0) < n]
    return Verdict(
        jobs=len(ids),
        completed=sum(1 for s in states if s in FINAL),
        dead_lettered=len(dead),
        lost=lost,
        stuck=stuck,
        duplicates=duplicates,
        flagged=sum(
            1 for j, r in runs.items() if flagged[j] and sum(e.end is not None for e in r) > 1
        ),
        killed_before_ack=killed,
        uncounted=uncounted,
        reruns=sum(len(r) - len({e.attempt for e in r}) for r in runs.values()),
        short_groups=short,
        early=early,
        huge_wrong=huge_wrong,
        executions=sum(len(r) for r in runs.values()),
        worst_kill_redelivery=_worst_redelivery(runs, history.kills),
        fanout_wrong=fanout_wrong,
        steps=step_verdict,
    )


def _fanouts(client: redis.Redis, keys: QueueKeys, fanouts: dict[str, int]) -> list[str]:
    """Fan-out groups whose callback did not succeed, or was given anything but every member's
    outcome in order, or whose record did not count every member."""
    out = []
    for gid, size in fanouts.items():
        state, done = client.hmget(keys.job(gid), ["state", "group_done"])
        runs = [json.loads(line) for line in client.lrange(FANOUT_PREFIX + gid, 0, -1)]
        whole = all(r["results"] == size and r["ordered"] for r in runs)
        if state != b"success" or done != str(size).encode() or not runs or not whole:
            out.append(gid)
    return out


def _worst_redelivery(runs: dict[str, list[Execution]], kills: dict[int, float]) -> float:
    """Longest time from a SIGKILL to a job that was running on the killed worker (and had not
    ended) starting on another worker."""
    worst = 0.0
    for job_runs in runs.values():
        for i, e in enumerate(job_runs):
            killed = kills.get(e.pid)
            if killed is None or e.start > killed or e.end or e.cancelled or e.failed:
                continue
            later = [r.start for r in job_runs[i + 1 :] if r.pid != e.pid and r.start >= killed]
            if later:
                worst = max(worst, later[0] - killed)
    return worst


def _group_completions(client: redis.Redis) -> dict[str, int]:
    """Completions of id-less messages, by group: their ids were given by workers, so they are
    found by scanning the execution records and reading each job's status."""
    out: dict[str, int] = defaultdict(int)
    for key in client.scan_iter(match="faults:group:*", count=1000):
        group = key.decode().rpartition(":")[2]
        out[group] = int(client.scard(key))
    return out


def _early(history: History, runs: dict[str, list[Execution]]) -> list[str]:
    """Delayed jobs whose first execution started before the due time the server computed
    when they were enqueued (both on the server's clock)."""
    out = []
    for job_id, due in history.due.items():
        first = runs.get(job_id) or []
        if first and first[0].start < due - 0.05:
            out.append(job_id)
    return out


def _huge(
    client: redis.Redis, keys: QueueKeys, huge: list[str], dead: dict[str, dict[str, Any]]
) -> list[str]:
    out = []
    for job_id in huge:
        entry = dead.get(job_id)
        if (
            entry is None
            or entry.get("kind") != "too_large"
            or client.hstrlen(keys.dead_blobs, str(entry.get("blob"))) != entry.get("size")
            or client.hget(keys.job(job_id), "state") != b"dead"
        ):
            out.append(job_id)
    return out
