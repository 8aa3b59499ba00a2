"""Composition from inside a workflow: child jobs, groups and chains, each created once.

A workflow may run more than once (a retry, a re-delivery after a crash). What it creates is
named after its own id and the call's place among the calls of its kind in the attempt
(`<parent id>.child-0`, `.group-0`, `.chain-0`, or `.<key>` when the caller gives a key), so
the next attempt asks for the same names and finds them: a child is enqueued with a call id
fixed by its own id (`enqueue-2.lua` recognises its own records), and a group or chain is
guarded by its record (`group-2.lua`). The parent's status record lists what it created under
`children`; each child's record names its `parent`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workflow_worker.engine.queue import as_text
from workflow_worker.producer.compose import Chain, chain_call, derived_id, group_call
from workflow_worker.producer.requests import JobSpec, enqueue_call

if TYPE_CHECKING:
    from workflow_worker.engine.queue import RedisQueue
    from workflow_worker.settings import Settings
    from workflow_worker.workflows.context import JobContext

__all__ = ["Composer", "Scope", "enqueue_child", "start_chain", "start_group"]


@dataclass(frozen=True, slots=True)
class Composer:
    """What composition needs of the worker: its settings and the queue the job came from
    (one per queue a worker consumes, shared by its jobs)."""

    settings: Settings
    queue: RedisQueue


@dataclass(slots=True)
class Scope:
    """One attempt's composer: the worker's, plus how many of each kind of call it made."""

    composer: Composer
    counts: dict[str, int] = field(default_factory=dict)


def _scope(ctx: JobContext) -> Scope:
    held = ctx.composer
    if isinstance(held, Scope):
        return held
    if held is None:
        raise RuntimeError("this context was not made by a worker: it cannot enqueue jobs")
    scope = Scope(held)
    # The context is frozen for the workflow's sake; the scope is its own bookkeeping.
    object.__setattr__(ctx, "composer", scope)
    return scope


def _name(ctx: JobContext, scope: Scope, kind: str, key: str | None) -> str:
    """The id of what this call creates: fixed by the parent's id and the call's occurrence."""
    if key is not None:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        return derived_id(ctx.job_id, key)
    n = scope.counts.get(kind, 0)
    scope.counts[kind] = n + 1
    return derived_id(ctx.job_id, f"{kind}-{n}")


async def _adopt(ctx: JobContext, composer: Composer, ids: Sequence[str]) -> None:
    keys = composer.queue.keys
    await composer.queue.scripts.add_child(
        keys=[keys.job(ctx.job_id)], args=[composer.settings.result_ttl, *ids]
    )


async def enqueue_child(
    ctx: JobContext,
    workflow: str,
    payload: Mapping[str, Any] | None,
    key: str | None,
    options: Mapping[str, Any],
) -> str:
    """Enqueue a child job once per parent; its id (the id of the job holding its unique key
    when another job holds it)."""
    if "id" in options:
        raise ValueError("a child's id comes from its parent: pass key= to name it")
    scope = _scope(ctx)
    composer = scope.composer
    child_id = _name(ctx, scope, "child", key)
    spec = JobSpec(workflow, payload, id=child_id, **options)
    call = enqueue_call(
        [spec],
        composer.settings,
        composer.queue.keys,
        call_id="child:" + child_id,
        more_status={"parent": ctx.job_id},
    )
    (holder,) = await composer.queue.scripts.enqueue(keys=call.keys, args=call.args)
    found = as_text(holder) or child_id
    # After the child exists: a crash in between leaves it unlisted until the next attempt
    # enqueues it again (finding it) and lists it.
    await _adopt(ctx, composer, [found])
    return found


async def start_group(
    ctx: JobContext, specs: Iterable[JobSpec], then: JobSpec | None, key: str | None
) -> str:
    """Create a group (and its callback) once per parent; the group's id."""
    scope = _scope(ctx)
    composer = scope.composer
    gid = _name(ctx, scope, "group", key)
    call, composed = group_call(
        specs, then, composer.settings, composer.queue.keys, gid, parent=ctx.job_id
    )
    await composer.queue.scripts.group(keys=call.keys, args=call.args)
    await _adopt(ctx, composer, [composed.id])
    return composed.id


async def start_chain(
    ctx: JobContext, links: Sequence[JobSpec] | Chain, key: str | None
) -> list[str]:
    """Create a chain once per parent; its jobs' ids, first to last."""
    scope = _scope(ctx)
    composer = scope.composer
    cid = _name(ctx, scope, "chain", key)
    call, composed = chain_call(
        links, composer.settings, composer.queue.keys, cid, parent=ctx.job_id
    )
    await composer.queue.scripts.group(keys=call.keys, args=call.args)
    await _adopt(ctx, composer, composed.jobs)
    return list(composed.jobs)
