"""The job envelope on the wire: decoding, validation and encoding. Pure, no I/O.

A producer that knows nothing of this package writes `{"workflow": "name", "payload": {...}}`.
The package's own client writes the full form with `id`, `enqueued_at`, `attempt`,
`max_attempts` and `timeout`. Unknown fields are kept and written back unchanged.
The JSON Schema is `workflow_worker/engine/job.schema.json`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "KNOWN_FIELDS",
    "InvalidJob",
    "Job",
    "State",
    "decode_job",
    "new_job_id",
    "peek_identity",
    "utf8_json",
    "with_id",
]

KNOWN_FIELDS = frozenset(
    {"id", "workflow", "payload", "enqueued_at", "attempt", "max_attempts", "timeout"}
)
MAX_ID_LENGTH = 200


class State(StrEnum):
    """States of a job's status record."""

    QUEUED = "queued"
    DELAYED = "delayed"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCESS = "success"
    FAILURE = "failure"
    DEAD = "dead"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class InvalidJob(ValueError):
    """A message that can never run; the message is the dead-letter reason."""


def new_job_id() -> str:
    """32 random hex digits (the same shape as uuid4().hex, at a fraction of the cost)."""
    return os.urandom(16).hex()


def _reject_constant(name: str) -> float:
    raise InvalidJob(f"not valid JSON: {name} is not allowed")


def _finite_float(text: str) -> float:
    # 1e400 parses to infinity, which would be written back as `Infinity`: not JSON.
    value = float(text)
    if math.isinf(value):
        raise InvalidJob(f"not valid JSON: the number {text[:40]} is out of range")
    return value


_decode = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float).decode


def utf8_json(text: str) -> str:
    """`text` with lone UTF-16 surrogates written as JSON escapes, so it encodes as UTF-8.

    JSON lets a string hold "\\ud800"; decoded, that is a lone surrogate, which UTF-8 cannot
    carry. Written back raw, the job would no longer be valid UTF-8 on its next attempt.
    Surrogates only ever sit inside JSON strings, where the escape means the same thing.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def with_id(raw: bytes | str, job_id: str) -> str:
    """The message `raw` (a valid job without an id) with `"id": job_id` added as its first
    field, everything else exactly as the producer wrote it."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    start = text.index("{")
    return '{"id":' + json.dumps(job_id) + "," + text[start + 1 :]


def peek_identity(raw: bytes | str) -> tuple[str, str]:
    """(id, unique key) of a message that cannot run, as far as they can be read ("" when not).

    Reads a whole message leniently, or just the top-level fields that fit in a head cut off
    mid-way: the status record and unique lock of a job that is dead-lettered for being bad
    must still be ended and released.
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    fields: dict[str, Any] = {}
    decoder = json.JSONDecoder()
    pos = text.find("{") + 1
    if pos == 0:
        return "", ""
    try:
        while True:
            key, pos = decoder.raw_decode(text, _skip(text, pos))
            pos = _skip(text, pos)
            if not isinstance(key, str) or text[pos : pos + 1] != ":":
                break
            value, pos = decoder.raw_decode(text, _skip(text, pos + 1))
            fields.setdefault(key, value)
            pos = _skip(text, pos)
            if text[pos : pos + 1] != ",":
                break
            pos += 1
    except (ValueError, RecursionError):
        pass
    job_id, unique = fields.get("id"), fields.get("unique_key")
    job_id = job_id if _usable_name(job_id) else ""
    unique = unique if _usable_name(unique) else ""
    return str(job_id), str(unique)


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _usable_name(value: object) -> bool:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(slots=True)
class Job:
    """One job as the worker sees it; `extra` holds unknown fields, kept as they came."""

    workflow: str
    payload: dict[str, Any]
    id: str = field(default_factory=new_job_id)
    enqueued_at: float | None = None
    attempt: int = 1
    max_attempts: int | None = None
    timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    generated_id: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        data.update(id=self.id, workflow=self.workflow, payload=self.payload, attempt=self.attempt)
        if self.enqueued_at is not None:
            data["enqueued_at"] = self.enqueued_at
        if self.max_attempts is not None:
            data["max_attempts"] = self.max_attempts
        if self.timeout is not None:
            data["timeout"] = self.timeout
        return data

    def encode(self) -> str:
        return utf8_json(json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False))

    def next_attempt(self) -> Job:
        """The same job for its next attempt."""
        return Job(
            workflow=self.workflow,
            payload=self.payload,
            id=self.id,
            enqueued_at=time.time(),
            attempt=self.attempt + 1,
            max_attempts=self.max_attempts,
            timeout=self.timeout,
            extra=self.extra,
        )


def _positive_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidJob(f"'{name}' must be a positive integer, got {value!r:.80}")
    return value


def _positive_number(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidJob(f"'{name}' must be a number, got {value!r:.80}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidJob(f"'{name}' must be a positive number, got {value!r:.80}")
    return float(value)


def _unicode_text(value: str, name: str) -> None:
    """Names end up in Redis keys and log lines: they must be encodable text (JSON allows lone
    UTF-16 surrogates such as "\\ud800", which UTF-8 cannot carry)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJob(f"'{name}' is not valid Unicode (a lone surrogate)") from None


def _parse_object(raw: bytes | str, max_bytes: int) -> dict[str, Any]:
    if len(raw) > max_bytes:
        raise InvalidJob(f"message is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise InvalidJob(f"not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        data = _decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidJob(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidJob("not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidJob(f"not a JSON object: got {type(data).__name__}")
    return data


def decode_job(raw: bytes | str, *, max_bytes: int = 1 << 20) -> Job:
    """Parse and validate one message; raise `InvalidJob` with the reason."""
    data = _parse_object(raw, max_bytes)
    workflow = data.get("workflow")
    if not isinstance(workflow, str) or not workflow.strip():
        raise InvalidJob("'workflow' is missing or not a non-empty string")
    _unicode_text(workflow, "workflow")
    payload = data.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise InvalidJob(f"'payload' must be a JSON object, got {type(payload).__name__}")
    job_id = data.get("id")
    generated_id = job_id is None
    if job_id is None:
        job_id = new_job_id()
    elif not isinstance(job_id, str) or not job_id or len(job_id) > MAX_ID_LENGTH:
        raise InvalidJob(f"'id' must be a string of 1 to {MAX_ID_LENGTH} characters")
    else:
        _unicode_text(job_id, "id")
    enqueued_at = data.get("enqueued_at")
    if enqueued_at is not None and (
        isinstance(enqueued_at, bool) or not isinstance(enqueued_at, int | float)
    ):
        raise InvalidJob(f"'enqueued_at' must be a Unix time in seconds, got {enqueued_at!r:.80}")
    return Job(
        workflow=workflow,
        payload=payload,
        id=job_id,
        enqueued_at=float(enqueued_at) if enqueued_at is not None else None,
        attempt=_positive_int(data, "attempt") or 1,
        max_attempts=_positive_int(data, "max_attempts"),
        timeout=_positive_number(data, "timeout"),
        extra={k: v for k, v in data.items() if k not in KNOWN_FIELDS},
        generated_id=generated_id,
    )
