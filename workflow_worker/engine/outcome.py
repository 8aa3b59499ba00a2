"""Turn the end of one attempt into the state change that records it. Pure, no I/O.

Every path that ends a job (success, final failure, a message that can never run) writes the
job's status record and releases its unique lock when the job has them, so `result()` returns
and the same id can be enqueued again.
"""

from __future__ import annotations

import json
import math
import random
import traceback
from dataclasses import dataclass

from workflow_worker.engine.job import Job, State, peek_identity
from workflow_worker.engine.queue import Claimed, Op, unix_now
from workflow_worker.settings import Settings

__all__ = [
    "Outcome",
    "backoff_seconds",
    "dead_letter_entry",
    "dead_status",
    "expired",
    "failed",
    "invalid",
    "oversized",
    "oversized_entry",
    "succeeded",
]

# One encoder for every result (json.dumps with options builds a new one per call).
_encode_result = json.JSONEncoder(default=str, ensure_ascii=False).encode

MAX_TRACEBACK = 4000
MAX_ERROR = 1000


@dataclass(frozen=True, slots=True)
class Outcome:
    """The op to apply, the `workflow_jobs_total` status, and a word for the log line."""

    op: Op
    status: str
    error: str = ""


def backoff_seconds(attempt: int, settings: Settings) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    base = settings.retry_backoff_seconds * (2 ** min(attempt - 1, 30))
    capped = min(base, settings.retry_backoff_max_seconds)
    return float(capped / 2 + random.uniform(0, capped / 2))


def dead_letter_entry(reason: str, raw: str, kind: str, job_id: str = "", **more: object) -> str:
    """One dead-letter list item: the reason, when, and the message text as it was."""
    entry: dict[str, object] = {"reason": reason, "kind": kind, "failed_at": unix_now()}
    if job_id:
        entry["job_id"] = job_id
    entry.update(job=raw, **more)
    return json.dumps(entry, ensure_ascii=False)


def dead_status(reason: str) -> dict[str, str]:
    return {"state": State.DEAD.value, "error": reason[:MAX_ERROR], "finished_at": unix_now()}


def invalid(token: str, raw: bytes, reason: str) -> Outcome:
    """A message that can never run: dead-lettered with its reason; its status record (if it
    carries an id) says so and its unique lock (if any) is released."""
    text = raw.decode("utf-8", "replace")
    job_id, unique = peek_identity(text)
    op = Op(
        "dead",
        token,
        job_id,
        dead_letter_entry(reason, text, "invalid", job_id),
        status=dead_status(reason) if job_id else {},
        unique_key=unique,
        cancellable=bool(job_id),
    )
    return Outcome(op, "dead", reason)


def oversized(item: Claimed, limit: int) -> Outcome:
    """A message over the size limit, judged by its head: its text moves to the dead-letter
    blobs hash untouched (the worker never holds it) and the entry keeps the head."""
    reason, job_id, unique, entry = oversized_entry(item, limit)
    op = Op(
        "bury",
        item.token,
        job_id,
        entry,
        status=dead_status(reason) if job_id else {},
        unique_key=unique,
        cancellable=bool(job_id),
    )
    return Outcome(op, "dead", reason)


def oversized_entry(item: Claimed, limit: int) -> tuple[str, str, str, str]:
    """(reason, job id, unique key, dead-letter entry) of a message over the size limit."""
    reason = f"message is {item.size} bytes, over the {limit}-byte limit (WORKER_MAX_PAYLOAD_BYTES)"
    head = item.raw.decode("utf-8", "replace")
    job_id, unique = peek_identity(head)
    entry = dead_letter_entry(
        reason, head, "too_large", job_id, job_truncated=True, size=item.size, blob=item.token
    )
    return reason, job_id, unique, entry


def succeeded(token: str, job: Job, result: object, duration: float, settings: Settings) -> Outcome:
    encoded = _encode_result(result)
    if len(encoded) > settings.max_result_bytes:
        # The same input would give the same result: retrying cannot help.
        reason = (
            f"result is {len(encoded)} bytes, over the {settings.max_result_bytes}-byte limit "
            "(WORKER_MAX_RESULT_BYTES); store large results elsewhere and return a reference"
        )
        return _final_failure(token, job, reason, "", duration)
    status = {
        "state": State.SUCCESS.value,
        "workflow": job.workflow,
        "attempt": str(job.attempt),
        "finished_at": unix_now(),
        "duration": f"{duration:.6f}",
        "result": encoded,
        "error": "",
    }
    return Outcome(Op("done", token, job.id, status=status), "success")


def expired(token: str, job: Job) -> Outcome:
    """A job not started by its `expires_at`: ended, never run, its lock released."""
    status: dict[str, str] = {}
    if not job.generated_id:
        status = {
            "state": State.EXPIRED.value,
            "workflow": job.workflow,
            "finished_at": unix_now(),
            "error": f"expired at {job.extra.get('expires_at')} before it started",
        }
    return Outcome(Op("done", token, job.id, status=status), "expired")


def failed(
    token: str,
    job: Job,
    exc: BaseException,
    duration: float,
    settings: Settings,
    retry: bool = True,
    delay: float | None = None,
) -> Outcome:
    """Retry (after `delay` seconds, else with backoff) while attempts remain and `retry`
    allows, else dead-letter the job."""
    error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
    trace = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK:]
    max_attempts = job.max_attempts or settings.max_attempts
    if not retry:
        reason = f"failed on attempt {job.attempt} with an error that is not retried: {error}"
        return _final_failure(token, job, reason, trace, duration, error)
    if job.attempt >= max_attempts:
        reason = f"failed after {job.attempt} of {max_attempts} attempts: {error}"
        return _final_failure(token, job, reason, trace, duration, error)
    text = job.next_attempt().encode()
    size = len(text.encode("utf-8"))
    if size > settings.claim_limit:
        reason = (
            f"cannot retry: the next attempt's message would be {size} bytes, over the "
            f"{settings.claim_limit}-byte limit; last error: {error}"
        )
        return _final_failure(token, job, reason, trace, duration, error)
    if delay is None:
        delay = backoff_seconds(job.attempt, settings)
    status = {
        "workflow": job.workflow,
        "attempt": str(job.attempt),
        "finished_at": unix_now(),
        "duration": f"{duration:.6f}",
        "error": error,
        "traceback": trace,
        "state": State.RETRYING.value,
        "next_attempt_in": f"{delay:.3f}",
    }
    op = Op("retry", token, job.id, text, round(delay * 1000), status, extra_s=math.ceil(delay))
    return Outcome(op, "retried", error)


def _final_failure(
    token: str, job: Job, reason: str, trace: str, duration: float, error: str = ""
) -> Outcome:
    error = error or reason[:MAX_ERROR]
    status = {
        "state": State.FAILURE.value,
        "workflow": job.workflow,
        "attempt": str(job.attempt),
        "finished_at": unix_now(),
        "duration": f"{duration:.6f}",
        "error": error,
        "traceback": trace,
    }
    entry = dead_letter_entry(reason, job.encode(), "failed", job.id, error=error, traceback=trace)
    return Outcome(Op("dead", token, job.id, entry, status=status), "failure", error)
