"""Taking claims back: a dead worker's (reaping), and this worker's own that it is not running
(the audit, and the release at exit).

Reaping is two steps. `orphans-3.lua` lists the claims of workers without a live lease; this
module decides, per claim, what it becomes (decoding the message as a worker would: its id, its
unique lock, whether it can run at all); `reap-6.lua` then applies each decision only if the
claim is still there and its owner still has no lease. A job past the crash budget ends like any
other dead-lettered job: status record final, unique lock released. A message without an id is
given one the first time it is taken back, so its crash count follows it and two identical
messages keep two counts.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from dataclasses import dataclass

from workflow_worker.engine import groups
from workflow_worker.engine.groups import GROUP_FIELD
from workflow_worker.engine.job import InvalidJob, State, decode_job, peek_identity, with_id
from workflow_worker.engine.outcome import (
    dead_letter_entry,
    dead_status,
    oversized,
    oversized_entry,
)
from workflow_worker.engine.queue import Claimed, Op, ReapOrder, RedisQueue, unix_now
from workflow_worker.settings import Settings

__all__ = ["Reaped", "claim_call", "put_back_stray", "reap", "reap_orders", "release"]

log = logging.getLogger("workflow_worker.reaper")
# Orphans taken per call; a fleet of dead workers is taken back over a few calls.
ORPHANS_PER_CALL = 200


@dataclass(frozen=True, slots=True)
class Reaped:
    """What one reaping pass did on one queue."""

    requeued: int = 0
    dead_lettered: int = 0
    workers_removed: int = 0


def reap_orders(orphans: list[Claimed], settings: Settings) -> list[ReapOrder]:
    """What each orphaned claim becomes. Pure."""
    return [_order(item, settings) for item in orphans]


def _order(item: Claimed, settings: Settings) -> ReapOrder:
    if not item.whole:
        reason, job_id, unique, entry = oversized_entry(item, settings.claim_limit)
        return ReapOrder(
            item.token, job_id, "", entry, 2, dead_status(reason), {}, unique, bool(job_id)
        )
    try:
        job = decode_job(item.raw, max_bytes=settings.claim_limit)
    except InvalidJob as exc:
        text = item.raw.decode("utf-8", "replace")
        job_id, unique = peek_identity(text)
        entry = dead_letter_entry(str(exc), text, "invalid", job_id)
        return ReapOrder(
            item.token, job_id, "", entry, 1, dead_status(str(exc)), {}, unique, bool(job_id)
        )
    text = with_id(item.raw, job.id) if job.generated_id else item.raw.decode("utf-8")
    budget = settings.crash_redelivery_limit
    reason = (
        f"crash redelivery budget exhausted: the job was re-delivered {budget} times after "
        "its worker died"
    )
    dead = dead_status(reason)
    return ReapOrder(
        item.token,
        job.id,
        text,
        dead_letter_entry(reason, text, "crash_budget", job.id),
        0,
        dead,
        {"state": State.QUEUED.value, "requeued_at": unix_now()},
        str(job.extra.get("unique_key") or ""),
        not job.generated_id,
        groups.reap_end(job, dead) if GROUP_FIELD in job.extra else None,
    )


async def reap(queue: RedisQueue, settings: Settings, full_scan: bool) -> Reaped:
    """Take back the claims of workers whose lease expired, on one queue."""
    lease_ms = int(settings.lease_seconds * 1000)
    removed, orphans = await queue.orphans(
        full_scan, ORPHANS_PER_CALL, settings.claim_limit, lease_ms
    )
    requeued = buried = 0
    while orphans:
        results = await queue.reap(
            reap_orders(orphans, settings), settings.result_ttl, settings.crash_redelivery_limit
        )
        requeued += results.count(1)
        buried += results.count(2)
        if len(orphans) < ORPHANS_PER_CALL:
            break
        _, orphans = await queue.orphans(True, ORPHANS_PER_CALL, settings.claim_limit, lease_ms)
    return Reaped(requeued, buried, removed)


def claim_call(token: str) -> int:
    """The claim call number of a token "<worker id>|<call>:<n>" (-1 when it has none)."""
    try:
        return int(token.rpartition("|")[2].partition(":")[0])
    except ValueError:
        return -1


async def put_back_stray(
    queue: RedisQueue,
    settings: Settings,
    claims: list[Claimed],
    running: Container[str],
    horizon: int,
    in_doubt: set[int],
) -> int:
    """Put back this worker's `claims` that it is not running; returns how many.

    Claims of calls numbered `horizon` or above, and of calls `in_doubt` (a reply on its way,
    or lost and about to be asked again), may be in Redis before `running` knows them: they
    are left alone. The caller reads `horizon` before the scan and `in_doubt` before and after.
    """
    stray = [
        c
        for c in claims
        if c.token not in running
        and claim_call(c.token) < horizon
        and claim_call(c.token) not in in_doubt
    ]
    return await _put_back(queue, settings, stray)


async def release(queue: RedisQueue, settings: Settings, worker_id: str) -> int:
    """At exit, once nothing runs: put back every claim this worker still holds."""
    claims = await queue.claims_of(worker_id, settings.claim_limit)
    return await _put_back(queue, settings, claims)


async def _put_back(queue: RedisQueue, settings: Settings, claims: list[Claimed]) -> int:
    if not claims:
        return 0
    ops = [
        Op("requeue", c.token, arg=c.raw.decode("utf-8", "replace"))
        if c.whole
        else oversized(c, settings.claim_limit).op
        for c in claims
    ]
    held = await queue.apply(ops, settings.result_ttl)
    return sum(1 for h in held if h)
