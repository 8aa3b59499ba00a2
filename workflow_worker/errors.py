"""Every exception the package raises on purpose, for applications to catch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = [
    "ConfigError",
    "DuplicateJob",
    "JobCancelled",
    "JobFailed",
    "PayloadTooLarge",
    "Permanent",
    "Retry",
]


class ConfigError(ValueError):
    """A setting has a value the worker cannot use; the message names the variable (or flag).

    Without `reason` the value itself is wrong and `allowed` says what would do; with `reason`
    the value is well-formed but cannot be used (a port already taken, a module that fails to
    import), and `reason` says why. `value` None leaves the value out of the message.
    """

    def __init__(
        self, variable: str, value: str | None, allowed: str = "", *, reason: str = ""
    ) -> None:
        # A flag reads as typed on the command line: `--concurrency 0`, not `--concurrency='0'`.
        if value is None:
            shown = variable
        elif variable.startswith("--"):
            shown = f"{variable} {value}"
        else:
            shown = f"{variable}={value!r}"
        if reason:
            super().__init__(f"{shown} cannot be used: {reason}")
        else:
            super().__init__(f"{shown} is not valid: expected {allowed}")
        self.variable = variable


class PayloadTooLarge(ValueError):
    """The encoded job is over WORKER_MAX_PAYLOAD_BYTES."""


class JobFailed(RuntimeError):
    """`result()` of a job that ended without success; carries its status record."""

    def __init__(self, job_id: str, record: Mapping[str, Any]) -> None:
        super().__init__(self._message(job_id, record))
        self.job_id = job_id
        self.record = dict(record)

    @staticmethod
    def _message(job_id: str, record: Mapping[str, Any]) -> str:
        state = record.get("state", "?")
        return f"job {job_id} ended as {state}: {record.get('error') or 'no error'}"


class JobCancelled(JobFailed):
    """`result()` of a job that was cancelled: it did not fail, it was told to stop."""

    @staticmethod
    def _message(job_id: str, record: Mapping[str, Any]) -> str:
        return f"job {job_id} was cancelled"


class _Holder(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def unique_key(self) -> str | None: ...


class DuplicateJob(ValueError):
    """Nothing was enqueued: a job holding the same unique key is queued, delayed or running."""

    def __init__(self, result: _Holder) -> None:
        super().__init__(
            f"a job with unique key {result.unique_key!r} is already queued, delayed or "
            f"running: {result.id}"
        )
        self.job_id = result.id
        self.unique_key = result.unique_key


class Retry(Exception):
    """Raised by a workflow: try again, after `delay` seconds (None: the usual backoff).

    The attempt counts: once the job has used its `max_attempts`, it fails for good instead.
    """

    def __init__(self, message: str = "", *, delay: float | None = None) -> None:
        if delay is not None and (not isinstance(delay, int | float) or not 0 <= delay < 1e9):
            raise ValueError(f"Retry delay must be a non-negative number of seconds: {delay!r}")
        super().__init__(message or (f"retry in {delay:g}s" if delay is not None else "retry"))
        self.delay = None if delay is None else float(delay)


class Permanent(Exception):
    """Raised by a workflow: this job can never succeed; fail it now, with no retry."""
