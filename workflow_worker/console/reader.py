"""What the console reads from Redis: queues, live workers, recent jobs, one job, dead letters.

Everything here is a read of keys the engine already keeps (docs/contract.md); the job list
comes from the recent-jobs index `{Q}:recent`, so listing never scans the keyspace. Each view is
bounded: a window of the newest index entries, a page of dead letters, at most a few thousand
queue entries searched for one job's message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflow_worker.console.redact import redacted_text
from workflow_worker.engine.job import State
from workflow_worker.engine.queue import as_text
from workflow_worker.producer.client import FINAL_STATES, Client
from workflow_worker.producer.requests import DeadLetter, decode_record, parse_dead_letters
from workflow_worker.settings import Settings

__all__ = ["FINISHED", "STATES", "Reader", "dead_digest"]

STATES = tuple(state.value for state in State)
FINISHED = frozenset(FINAL_STATES)
# Fields of a record the job list shows (one HMGET per listed job).
_ROW_FIELDS = (
    "state",
    "workflow",
    "attempt",
    "max_attempts",
    "enqueued_at",
    "started_at",
    "finished_at",
    "worker",
    "error",
)
# How many messages at each end of the queue list are searched for one job's message.
QUEUE_SEARCH = 2000
DEAD_SEARCH = 2000
THROUGHPUT_WINDOW_S = 60
THROUGHPUT_SAMPLE = 5000


def dead_digest(raw: str) -> str:
    """A short stable name for one dead-letter entry: positions shift as entries arrive, so
    actions name an entry by its content."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True, slots=True)
class Found:
    """Where a job's message is now, and its text (None when no copy is kept)."""

    place: str
    text: str | None


class Reader:
    """Reads for every queue of `settings.queues`, on one shared Redis client."""

    def __init__(self, settings: Settings, redis: Any) -> None:
        self.settings = settings
        self.redis = redis
        self.clients = {q: Client(settings, redis=redis, queue=q) for q in settings.queues}

    def client(self, queue: str | None) -> Client:
        """The client of `queue` (the first queue when None); KeyError for an unknown queue."""
        return self.clients[queue or self.settings.queues[0]]

    async def server_time(self) -> float:
        seconds, micros = await self.redis.time()
        return float(seconds) + float(micros) / 1e6

    async def queues(self) -> list[dict[str, Any]]:
        """Per queue: sizes, age of the next job, jobs finished in the last minute."""
        now = await self.server_time()
        out = []
        for name, client in self.clients.items():
            stats = (await client.stats()).as_dict()
            finished, capped = await self._finished_since(client, now - THROUGHPUT_WINDOW_S)
            stats.update(queue=name, finished_last_minute=finished, finished_capped=capped)
            out.append(stats)
        return out

    async def _finished_since(self, client: Client, since: float) -> tuple[int, bool]:
        ids = await self.redis.zrange(
            client.keys.recent,
            "+inf",
            int(since * 1000),
            desc=True,
            byscore=True,
            offset=0,
            num=THROUGHPUT_SAMPLE,
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(client.keys.job(as_text(job_id)), "state", "finished_at")
            rows = await pipe.execute() if ids else []
        count = 0
        for state, finished in rows:
            if state is not None and as_text(state) in FINISHED and finished is not None:
                try:
                    count += float(finished) >= since
                except ValueError:
                    continue
        return count, len(ids) >= THROUGHPUT_SAMPLE

    async def workers(self) -> list[dict[str, Any]]:
        """Live workers of every queue: lease, host, pod, version, capacity, claims held."""
        now_ms = await self.server_time() * 1000
        merged: dict[str, dict[str, Any]] = {}
        for name, client in self.clients.items():
            k = client.keys
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrange(k.workers, 0, -1, withscores=True)
                pipe.hgetall(k.workers_info)
                pipe.hkeys(k.processing)
                leases, infos, tokens = await pipe.execute()
            held: dict[str, int] = {}
            for token in tokens:
                owner = as_text(token).rpartition("|")[0]
                held[owner] = held.get(owner, 0) + 1
            for raw_id, expiry in leases:
                wid = as_text(raw_id)
                info = _json_object(infos.get(raw_id))
                row = merged.setdefault(wid, {"id": wid, **info, "queues": [], "claims": 0})
                row["queues"].append(name)
                row["claims"] += held.get(wid, 0)
                row["lease_left_seconds"] = round(max(0.0, float(expiry) - now_ms) / 1000, 1)
        return sorted(merged.values(), key=lambda w: (str(w.get("host", "")), w["id"]))

    async def jobs(
        self,
        *,
        queue: str | None = None,
        state: str | None = None,
        workflow: str | None = None,
        worker: str | None = None,
        limit: int = 100,
        window: int = 2000,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Newest changes first: up to `limit` jobs of the newest `window` index entries of each
        queue (all queues when `queue` is None) that match the filters; and the workflows seen
        among all those entries (the workflow filter's choices)."""
        names = [queue] if queue else list(self.clients)
        rows: list[dict[str, Any]] = []
        workflows: set[str] = set()
        for name in names:
            client = self.clients[name]
            entries = await self._newest(client.keys.recent, window)
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id, _score in entries:
                    pipe.hmget(client.keys.job(as_text(job_id)), *_ROW_FIELDS)
                values = await pipe.execute() if entries else []
            for (job_id, score), fields in zip(entries, values, strict=True):
                row = _row(as_text(job_id), name, float(score) / 1000, fields)
                if row["workflow"]:
                    workflows.add(str(row["workflow"]))
                if _matches(row, state, workflow, worker):
                    rows.append(row)
        rows.sort(key=lambda r: r["changed_at"], reverse=True)
        return rows[:limit], sorted(workflows)

    async def _newest(self, key: str, count: int) -> list[tuple[bytes, float]]:
        # ZRANGE ... REV rather than ZREVRANGE (which redis-py sends for desc=True): the
        # least-privilege ACL grants ZRANGE.
        # redis-py pairs a WITHSCORES reply into [member, score] itself.
        reply = await self.redis.execute_command("ZRANGE", key, 0, count - 1, "REV", "WITHSCORES")
        return [(member, float(score)) for member, score in reply]

    async def job(self, job_id: str, queue: str | None = None) -> dict[str, Any] | None:
        """One job: its record, where its message is (and what it says, redacted and capped),
        its dead-letter entries; None when no queue has a record or a dead letter of it."""
        names = [queue] if queue else list(self.clients)
        for name in names:
            client = self.clients[name]
            record = await client.status(job_id)
            dead = await self.dead_of(name, job_id)
            if record is None and not dead:
                continue
            found = await self._message(client, job_id, record, dead)
            payload = None
            if found.text is not None:
                payload = redacted_text(
                    found.text, self.settings.console_redact, self.settings.console_payload_bytes
                )
            return {
                "id": job_id,
                "queue": name,
                "record": self._shown_record(record) if record else None,
                "message_place": found.place,
                "message": payload,
                "dead_letters": [self.dead_row(d) for d in dead],
            }
        return None

    def _shown_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        shown = dict(record)
        if isinstance(shown.get("result"), str):
            shown["result"] = redacted_text(
                shown["result"], self.settings.console_redact, self.settings.console_payload_bytes
            )["text"]
        return shown

    async def _message(
        self,
        client: Client,
        job_id: str,
        record: Mapping[str, Any] | None,
        dead: list[DeadLetter],
    ) -> Found:
        """The job's message where it is kept: in flight (the claims of the worker that runs
        it), delayed, waiting (near the end that runs next), or in a dead letter."""
        state = record.get("state") if record else None
        text: bytes | str | None = None
        if state == "running" and record and record.get("worker"):
            text = await self._in_flight(client, job_id, str(record["worker"]))
            place = "in flight"
        elif state in ("delayed", "retrying"):
            text = await self._delayed(client, job_id)
            place = "delayed"
        elif state == "queued":
            text = await self._waiting(client, job_id)
            place = "waiting"
        if text is not None:
            return Found(place, as_text(text))
        if dead:
            return Found("dead letter", dead[0].job_text)
        if state in FINISHED:
            return Found("not kept after the job ended", None)
        return Found("not found where the console looks", None)

    async def _in_flight(self, client: Client, job_id: str, worker: str) -> bytes | None:
        # Claim tokens start with the worker's id: only that worker's claims are read.
        pattern = _glob_escape(worker) + "|*"
        async for _token, text in self.redis.hscan_iter(client.keys.processing, match=pattern):
            if _has_id(text, job_id):
                return bytes(text)
        return None

    async def _delayed(self, client: Client, job_id: str) -> bytes | None:
        pattern = "*" + _glob_escape(job_id) + "*"
        async for text, _score in self.redis.zscan_iter(client.keys.delayed, match=pattern):
            if _has_id(text, job_id):
                return bytes(text)
        return None

    async def _waiting(self, client: Client, job_id: str) -> bytes | None:
        # Producers push on the left, workers take from the right: a job is near one end.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lrange(client.keys.queue, 0, QUEUE_SEARCH - 1)
            pipe.lrange(client.keys.queue, -QUEUE_SEARCH, -1)
            newest, next_up = await pipe.execute()
        for text in [*newest, *next_up]:
            if _has_id(text, job_id):
                return bytes(text)
        return None

    async def dead_of(self, queue: str, job_id: str) -> list[DeadLetter]:
        """Dead-letter entries of one job, among the newest `DEAD_SEARCH`."""
        entries = await self.client(queue).dead_letters(0, DEAD_SEARCH)
        return [e for e in entries if str(e.entry.get("job_id") or "") == job_id]

    async def dead_letters(
        self, queue: str | None, start: int = 0, count: int = 50
    ) -> dict[str, Any]:
        client = self.client(queue)
        total = int(await self.redis.llen(client.keys.dead))
        entries = await client.dead_letters(start, count)
        return {
            "queue": client.keys.queue,
            "total": total,
            "start": start,
            "entries": [self.dead_row(e) for e in entries],
        }

    async def find_dead(self, queue: str | None, digest: str) -> DeadLetter | None:
        """The dead-letter entry with this digest (`dead_digest`), wherever it now is."""
        client = self.client(queue)
        total = int(await self.redis.llen(client.keys.dead))
        for start in range(0, total, 500):
            raw = await self.redis.lrange(client.keys.dead, start, start + 499)
            for entry in parse_dead_letters(raw, start):
                if dead_digest(entry.raw) == digest:
                    return entry
        return None

    def dead_row(self, dead: DeadLetter) -> dict[str, Any]:
        entry = dead.entry
        job = redacted_text(
            dead.job_text, self.settings.console_redact, self.settings.console_payload_bytes
        )
        workflow = _json_object(dead.job_text).get("workflow")
        extra = {k: v for k, v in entry.items() if k not in ("job", "reason")}
        return {
            "digest": dead_digest(dead.raw),
            "index": dead.index,
            "reason": dead.reason,
            "kind": entry.get("kind", ""),
            "failed_at": _number(entry.get("failed_at")),
            "job_id": entry.get("job_id"),
            "workflow": workflow if isinstance(workflow, str) else None,
            "job": job,
            "details": extra,
        }


def _row(job_id: str, queue: str, changed: float, fields: list[Any]) -> dict[str, Any]:
    raw = {
        name: value for name, value in zip(_ROW_FIELDS, fields, strict=True) if value is not None
    }
    record = decode_record(raw)
    error = str(record.get("error") or "")
    return {
        "id": job_id,
        "queue": queue,
        "state": record.get("state", "gone"),
        "workflow": record.get("workflow"),
        "attempt": record.get("attempt"),
        "max_attempts": record.get("max_attempts"),
        "enqueued_at": record.get("enqueued_at"),
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"),
        "worker": record.get("worker"),
        "error": error.splitlines()[0][:200] if error else "",
        "changed_at": round(changed, 3),
    }


def _matches(
    row: Mapping[str, Any], state: str | None, workflow: str | None, worker: str | None
) -> bool:
    return (
        (not state or row["state"] == state)
        and (not workflow or row["workflow"] == workflow)
        and (not worker or row["worker"] == worker)
    )


def _has_id(text: bytes | str, job_id: str) -> bool:
    return _json_object(text).get("id") == job_id


def _json_object(text: bytes | str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
