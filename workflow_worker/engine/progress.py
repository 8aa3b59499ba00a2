"""`ctx.progress(fraction, message)`: a running job's progress in its status record, cheaply.

Writes go through the worker's batcher as "progress" ops (apply-7.lua), conditional on the
claim like every other op. They are coalesced per job: at most one write every
`MIN_INTERVAL` seconds, carrying the latest value; a value not yet written when the attempt
ends is written with the job's final record. Nothing of this runs for a job that never reports
progress. A job without an id of its own has no status record, so its progress is dropped.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workflow_worker.engine.queue import Op
from workflow_worker.engine.threads import loop_of_this_thread

if TYPE_CHECKING:
    from workflow_worker.engine.execution import Running

__all__ = ["DONE", "MIN_INTERVAL", "Progress", "check", "report", "settle"]

# At most four writes a second per job.
MIN_INTERVAL = 0.25
MAX_MESSAGE = 200


@dataclass(slots=True)
class Progress:
    """The latest progress of one job, and when it was last written."""

    fraction: float
    message: str
    loop: asyncio.AbstractEventLoop
    written_at: float = -math.inf
    dirty: bool = True
    timer: asyncio.TimerHandle | None = None

    def fields(self) -> dict[str, str]:
        return {"progress": f"{self.fraction:.4f}", "progress_message": self.message}


class Done:
    """What `ctx.progress()` returns: already done, so `await` is optional (a sync workflow
    in its thread calls it without)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


DONE = Done()


def check(fraction: float, message: str) -> tuple[float, str]:
    """ValueError unless `fraction` is a number from 0 to 1; the message cut to 200 chars."""
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not math.isfinite(fraction)
        or not 0 <= fraction <= 1
    ):
        raise ValueError(f"progress must be a number from 0 to 1: {fraction!r}")
    return float(fraction), str(message)[:MAX_MESSAGE]


def report(running: Running, fraction: float, message: str) -> None:
    """Record the job's latest progress; from the loop's thread or a pool thread."""
    job = running.job
    if job is None or job.generated_id:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a sync workflow's thread: hand it to the job's loop
        owner = loop_of_this_thread()
        if owner is not None:
            owner.call_soon_threadsafe(report_on_loop, running, fraction, message, owner)
        return
    report_on_loop(running, fraction, message, loop)


def report_on_loop(
    running: Running, fraction: float, message: str, loop: asyncio.AbstractEventLoop
) -> None:
    if not running.in_workflow:
        return  # the attempt has ended: its final record is written already
    progress = running.progress
    if progress is None:
        progress = running.progress = Progress(fraction, message, loop)
    else:
        progress.fraction, progress.message, progress.dirty = fraction, message, True
    if progress.timer is not None:
        return  # a write is due: it will carry this value
    due = progress.written_at + MIN_INTERVAL
    if due <= loop.time():
        _write(running)
    else:
        progress.timer = loop.call_at(due, _write, running)


def _write(running: Running) -> None:
    progress, job = running.progress, running.job
    if progress is None or job is None:
        return
    progress.timer = None
    if not progress.dirty or not running.in_workflow:
        return
    progress.dirty = False
    progress.written_at = progress.loop.time()
    running.lane.batcher.post(Op("progress", running.token, job.id, status=progress.fields()))


def settle(running: Running, op: Op) -> None:
    """At the attempt's end: stop the timer, and put a value not yet written into the op that
    records the end (when that op writes a status record)."""
    progress = running.progress
    if progress is None:
        return
    if progress.timer is not None:
        progress.timer.cancel()
        progress.timer = None
    if progress.dirty and op.status:
        op.status.update(progress.fields())
        progress.dirty = False
