"""Turn the end of one attempt into the state change that records it. Pure, no I/O."""

from __future__ import annotations

import json
import random
import time
import traceback
from dataclasses import dataclass

from workflow_worker.engine.job import Job, State
from workflow_worker.engine.queue import Op, unix_now
from workflow_worker.settings import Settings

__all__ = ["Outcome", "backoff_seconds", "dead_letter_entry", "failed", "invalid", "succeeded"]

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


def dead_letter_entry(reason: str, raw: str, kind: str, **more: str) -> str:
    """One dead-letter list item: the reason, when, and the message text as it was."""
    entry = {"reason": reason, "kind": kind, "failed_at": unix_now(), "job": raw, **more}
    return json.dumps(entry, ensure_ascii=False)


def invalid(token: str, raw: bytes, reason: str, job_id: str = "") -> Outcome:
    text = raw.decode("utf-8", "replace")
    status = {"state": State.DEAD.value, "error": reason, "finished_at": unix_now()}
    op = Op(
        "dead",
        token,
        job_id,
        dead_letter_entry(reason, text, "invalid"),
        status=status if job_id else {},
    )
    return Outcome(op, "dead", reason)


def succeeded(token: str, job: Job, result: object, duration: float) -> Outcome:
    status = {
        "state": State.SUCCESS.value,
        "workflow": job.workflow,
        "attempt": str(job.attempt),
        "finished_at": unix_now(),
        "duration": f"{duration:.6f}",
        "result": _encode_result(result),
        "error": "",
    }
    return Outcome(Op("done", token, job.id, status=status), "success")


def failed(
    token: str, job: Job, exc: BaseException, duration: float, settings: Settings
) -> Outcome:
    """Retry with backoff while attempts remain, else dead-letter the job."""
    error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
    trace = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK:]
    status = {
        "workflow": job.workflow,
        "attempt": str(job.attempt),
        "finished_at": unix_now(),
        "duration": f"{duration:.6f}",
        "error": error,
        "traceback": trace,
    }
    max_attempts = job.max_attempts or settings.max_attempts
    if job.attempt < max_attempts:
        delay = backoff_seconds(job.attempt, settings)
        due_ms = int((time.time() + delay) * 1000)
        status.update(state=State.RETRYING.value, next_attempt_in=f"{delay:.3f}")
        op = Op("retry", token, job.id, job.next_attempt().encode(), due_ms, status)
        return Outcome(op, "retried", error)
    reason = f"failed after {job.attempt} of {max_attempts} attempts: {error}"
    status["state"] = State.FAILURE.value
    entry = dead_letter_entry(reason, job.encode(), "failed", error=error, traceback=trace)
    return Outcome(Op("dead", token, job.id, entry, status=status), "failure", error)
