"""Pure request builders and answer parsers shared by the async and the sync client."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workflow_worker.engine.job import InvalidJob, Job, State, decode_job, new_job_id
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.queue import as_text, unix_now
from workflow_worker.errors import DuplicateJob, JobCancelled, JobFailed, PayloadTooLarge
from workflow_worker.settings import Settings

if TYPE_CHECKING:
    from workflow_worker.producer.compose import Chain

__all__ = [
    "DeadLetter",
    "DuplicateJob",
    "Enqueued",
    "JobCancelled",
    "JobFailed",
    "JobSpec",
    "PayloadTooLarge",
    "ScriptCall",
    "cancel_call",
    "decode_record",
    "enqueue_call",
    "enqueue_results",
    "parse_dead_letters",
    "requeue_call",
    "result_of",
]


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The answer for one job: its id, whether it was created, and its unique key if any."""

    id: str
    created: bool
    unique_key: str | None = None


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job to enqueue.

    `id` makes the job unique by id; `unique_key` by any key of yours. Either way, enqueueing
    does nothing while a job holding that key is queued, delayed or running. `delay` (seconds)
    or `at` (Unix time or aware datetime) park the job in the delayed set until it is due.
    `expires` (seconds, counted on the Redis server's clock from the enqueue, not from the
    delay; or an aware datetime) is the job's deadline: not started by then, it ends as
    `expired` and never runs.
    """

    workflow: str
    payload: Mapping[str, Any] | None = None
    id: str | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    delay: float | None = None
    at: float | datetime | None = None
    unique_key: str | None = None
    expires: float | datetime | None = None

    def delay_seconds(self, now: float) -> float:
        """Seconds until the job is due (0: now). The server adds them to its own clock, so
        only `at` depends on this producer's clock (`now`), as an absolute time must."""
        if self.delay is not None and self.at is not None:
            raise ValueError("give delay or at, not both")
        if self.delay is not None:
            if not _finite(self.delay) or self.delay < 0:
                raise ValueError(f"delay must be a non-negative number of seconds: {self.delay!r}")
            return float(self.delay)
        if isinstance(self.at, datetime):
            if self.at.tzinfo is None:
                raise ValueError("at must be timezone-aware")
            return max(0.0, self.at.timestamp() - now)
        if self.at is not None:
            if not _finite(self.at):
                raise ValueError(f"at must be a Unix time: {self.at!r}")
            return max(0.0, float(self.at) - now)
        return 0.0

    def expiry(self) -> tuple[int, float | None]:
        """(ms after enqueue, on the server's clock; 0: none) or (0, Unix time) for `expires`:
        seconds from now, or an aware datetime (absolute: no clock is consulted)."""
        if self.expires is None:
            return 0, None
        if isinstance(self.expires, datetime):
            if self.expires.tzinfo is None:
                raise ValueError("expires must be timezone-aware")
            return 0, self.expires.timestamp()
        if not _finite(self.expires) or self.expires <= 0:
            raise ValueError(f"expires must be a positive number of seconds: {self.expires!r}")
        return max(1, math.ceil(self.expires * 1000)), None

    def check(self) -> None:
        """Refuse what a worker would dead-letter as invalid (`ValueError` naming the field)."""
        if not isinstance(self.workflow, str) or not self.workflow.strip():
            raise ValueError("workflow must be a non-empty string")
        if self.max_attempts is not None and (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be a positive integer: {self.max_attempts!r}")
        if self.timeout is not None and (not _finite(self.timeout) or self.timeout <= 0):
            raise ValueError(f"timeout must be a positive number of seconds: {self.timeout!r}")
        if self.id is not None and (not isinstance(self.id, str) or not 1 <= len(self.id) <= 200):
            raise ValueError("id must be a string of 1 to 200 characters")

    def __or__(self, other: JobSpec | Chain) -> Chain:
        """`a | b`: a chain, each job given the previous one's outcome (docs/composition.md)."""
        from workflow_worker.producer.compose import Chain  # compose imports this module

        return Chain((self,)) | other

    def lock(self) -> str | None:
        """The unique lock this job takes: `key:<unique_key>`, else `id:<id>`, else None."""
        if self.unique_key:
            return f"key:{self.unique_key}"
        return f"id:{self.id}" if self.id else None


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """KEYS and ARGV for one script call, plus what is needed to read its answer."""

    keys: list[str]
    args: list[str | int]
    ids: tuple[str, ...] = ()
    locks: tuple[str | None, ...] = ()


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _job(spec: JobSpec, settings: Settings, now: float) -> Job:
    spec.check()
    extra: dict[str, Any] = {}
    lock = spec.lock()
    if lock is not None:
        extra["unique_key"] = lock
    return Job(
        workflow=spec.workflow,
        payload=dict(spec.payload or {}),
        id=spec.id or new_job_id(),
        enqueued_at=now,
        attempt=1,
        # Left out when not given, so the worker applies the workflow's policy, then its own
        # WORKER_MAX_ATTEMPTS / WORKER_JOB_TIMEOUT.
        max_attempts=spec.max_attempts,
        timeout=spec.timeout,
        extra=extra,
    )


def _checked_text(job: Job, settings: Settings) -> str:
    text = job.encode()
    size = len(text.encode("utf-8"))
    if size > settings.max_payload_bytes:
        raise PayloadTooLarge(
            f"job {job.id} is {size} bytes encoded, over the {settings.max_payload_bytes}-byte "
            "limit (WORKER_MAX_PAYLOAD_BYTES); store large data elsewhere and pass a reference"
        )
    return text


def enqueue_call(
    specs: Sequence[JobSpec],
    settings: Settings,
    keys: QueueKeys,
    *,
    call_id: str | None = None,
    more_status: Mapping[str, str] | None = None,
) -> ScriptCall:
    """Arguments of `enqueue-2.lua` for these jobs (validated, ids assigned). A fixed
    `call_id` makes the call find its own records again whenever it is repeated (a child job
    of a workflow, enqueued again by the workflow's next attempt); `more_status` adds fields
    to every job's record (a child's `parent`)."""
    all_keys = [keys.queue, keys.delayed]
    jobs: list[list[Any]] = []
    ids: list[str] = []
    locks: list[str | None] = []
    now = time.time()
    for spec in specs:
        job = _job(spec, settings, now)
        text = _checked_text(job, settings)
        delay = spec.delay_seconds(now)
        lock = spec.lock()
        status = {
            "state": (State.DELAYED if delay else State.QUEUED).value,
            "workflow": job.workflow,
            "attempt": "1",
            "max_attempts": str(job.max_attempts or settings.max_attempts),
            "queue": keys.queue,
            "enqueued_at": f"{now:.6f}",
        }
        if lock is not None:
            status["unique_key"] = lock
        if more_status:
            status.update(more_status)
        expires_ms, expires_at = spec.expiry()
        if expires_at is not None:
            job.extra["expires_at"] = round(expires_at, 3)
            text = _checked_text(job, settings)
            status["expires_at"] = f"{expires_at:.3f}"
        all_keys.append(keys.job(job.id))
        status_index = len(all_keys)
        lock_index = 0
        if lock is not None:
            all_keys.append(keys.unique(lock))
            lock_index = len(all_keys)
        job_args = [text, job.id, status_index, lock_index, math.ceil(delay * 1000), status]
        if expires_ms:
            job_args.append(expires_ms)
        jobs.append(job_args)
        ids.append(job.id)
        locks.append(lock)
    batch = json.dumps(jobs, separators=(",", ":"))
    # One id per call: the same call sent again after a lost reply enqueues nothing twice.
    call = call_id or os.urandom(12).hex()
    args: list[str | int] = [settings.result_ttl, batch, keys.events, call]
    # The recent-jobs index (the console's job list), written in the same script.
    if settings.recent_jobs:
        all_keys.append(keys.recent)
        args += [len(all_keys), settings.recent_jobs]
    return ScriptCall(all_keys, args, tuple(ids), tuple(locks))


def enqueue_results(call: ScriptCall, raw: Sequence[Any]) -> list[Enqueued]:
    out = []
    for job_id, lock, answer in zip(call.ids, call.locks, raw, strict=True):
        holder = as_text(answer)
        out.append(Enqueued(holder or job_id, created=not holder, unique_key=lock))
    return out


def cancel_call(
    job_id: str, unique: bytes | str | None, settings: Settings, keys: QueueKeys
) -> ScriptCall:
    """Arguments of `cancel-3.lua`."""
    lock = keys.unique(as_text(unique)) if unique else keys.cancel(job_id)
    return ScriptCall(
        [keys.job(job_id), keys.cancel(job_id), lock],
        [settings.result_ttl, job_id, unix_now(), keys.events],
    )


# Status records are Redis hashes, so every value arrives as text; these fields are numbers.
_INT_FIELDS = frozenset(
    {"attempt", "max_attempts", "group_total", "group_done", "group_failed", "group_index"}
)
_JSON_FIELDS = frozenset({"children"})
_FLOAT_FIELDS = frozenset(
    {
        "enqueued_at",
        "due_at",
        "started_at",
        "finished_at",
        "requeued_at",
        "duration",
        "next_attempt_in",
        "progress",
        "expires_at",
    }
)


def _typed(key: str, text: str) -> Any:
    try:
        if key in _INT_FIELDS:
            return int(text)
        if key in _FLOAT_FIELDS:
            return float(text)
        if key in _JSON_FIELDS:
            return json.loads(text)
    except ValueError:
        return text  # written by hand or by another producer: show it as it is
    return text


def decode_record(raw: Mapping[Any, Any]) -> dict[str, Any]:
    """A status record with numbers as numbers. `next_attempt_in` is kept only while the job
    is `retrying`: on any later state it is a leftover of an earlier attempt."""
    record = {as_text(k): as_text(v) for k, v in raw.items()}
    if record.get("state") != State.RETRYING.value:
        record.pop("next_attempt_in", None)
    return {key: _typed(key, text) for key, text in record.items()}


def result_of(job_id: str, record: Mapping[str, Any]) -> Any:
    """The job's return value; `JobCancelled` or `JobFailed` when it did not succeed."""
    state = record.get("state")
    if state == State.CANCELLED.value:
        raise JobCancelled(job_id, record)
    if state != State.SUCCESS.value:
        raise JobFailed(job_id, record)
    raw = record.get("result", "null")
    return json.loads(raw) if raw else None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-letter entry: its position (0 = newest), the parsed entry, and its raw text."""

    index: int
    entry: dict[str, Any]
    raw: str

    @property
    def reason(self) -> str:
        return str(self.entry.get("reason", ""))

    @property
    def job_text(self) -> str:
        return str(self.entry.get("job", ""))


def parse_dead_letters(raw: Sequence[bytes | str], start: int) -> list[DeadLetter]:
    out = []
    if start < 0:
        start = -len(raw)
    for offset, item in enumerate(raw):
        text = as_text(item)
        try:
            entry = json.loads(text)
        except ValueError:
            entry = {"reason": "unreadable dead-letter entry", "job": text}
        if not isinstance(entry, dict):
            entry = {"reason": "unreadable dead-letter entry", "job": text}
        out.append(DeadLetter(start + offset, entry, text))
    return out


def requeue_call(dead: DeadLetter, keys: QueueKeys) -> ScriptCall:
    """Arguments of `requeue_dead-4.lua`: same id and fields, fresh attempts; a message that
    never was a valid job goes back exactly as it was (from the blobs hash when it was too
    large to keep in its entry)."""
    fixed = [keys.dead, keys.queue]
    blob = dead.entry.get("blob")
    if isinstance(blob, str) and blob:
        job_id = str(dead.entry.get("job_id") or "")
        record = keys.job(job_id) if job_id else keys.dead
        flag = "1" if job_id else "0"
        return ScriptCall([*fixed, record, keys.dead_blobs], [dead.raw, "", flag, unix_now(), blob])
    text = dead.job_text
    try:
        job = decode_job(text, max_bytes=1 << 62)
    except InvalidJob:
        return ScriptCall(
            [*fixed, keys.dead, keys.dead_blobs], [dead.raw, text, "0", unix_now(), ""]
        )
    job.attempt = 1
    job.enqueued_at = time.time()
    has_record = "0" if job.generated_id else "1"
    return ScriptCall(
        [*fixed, keys.job(job.id), keys.dead_blobs],
        [dead.raw, job.encode(), has_record, unix_now(), ""],
    )
