"""Group membership on the worker's side: what a member's final outcome tells its group.

A job that belongs to a group (a chord's member, or a chain's link) carries a top-level
`group` field, `{"id": <group id>, "index": <place>, "rest": [<ids>]}` (`rest`: for a chain
link, the later links to mark as not run when this one fails). When such a job ends for good
(success, final failure, dead letter, cancel), the op that records the outcome also carries a
`MemberEnd`, and the script that applies it (`apply-7.lua`, or `reap-6.lua` for a dead
letter written by the reaper) records the member in the group's hash in the same atomic call;
the call that records the last member pushes the callback. Jobs without the field carry
nothing and cost nothing more. See docs/composition.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workflow_worker.engine.job import InvalidJob, Job, decode_job
from workflow_worker.engine.keys import QueueKeys

if TYPE_CHECKING:
    from workflow_worker.engine.queue import Op

__all__ = [
    "FINAL_KINDS",
    "GROUP_FIELD",
    "Member",
    "MemberEnd",
    "attach",
    "attach_raw",
    "entry",
    "member_of",
    "reap_end",
]

GROUP_FIELD = "group"
# Op kinds that end a job for good (see apply-7.lua).
FINAL_KINDS = frozenset({"done", "dead", "bury"})


@dataclass(frozen=True, slots=True)
class Member:
    """A job's place in a group, as its message says."""

    group: str
    index: int
    rest: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MemberEnd:
    """A member's final outcome, for the group-end block of the apply and reap scripts."""

    member: Member
    job_id: str
    state: str
    entry: str

    def lua(self, slot: Callable[[str], int], keys: QueueKeys) -> list[Any]:
        """[group hash, group record, index, entry, state, [later links' records], job id],
        keys as indices into the script's KEYS (`slot` adds them)."""
        m = self.member
        rest = [slot(keys.job(link)) for link in m.rest]
        return [
            slot(keys.group(m.group)),
            slot(keys.job(m.group)),
            m.index,
            self.entry,
            self.state,
            rest,
            self.job_id,
        ]


def member_of(job: Job) -> Member | None:
    """The job's group membership, or None (also for a malformed `group` field, which a
    producer of this package never writes: such a job runs as a plain job)."""
    raw = job.extra.get(GROUP_FIELD)
    if not isinstance(raw, dict):
        return None
    group, index, rest = raw.get("id"), raw.get("index"), raw.get("rest", [])
    if not isinstance(group, str) or not group:
        return None
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        return None
    if not isinstance(rest, list) or not all(isinstance(r, str) and r for r in rest):
        return None
    return Member(group, index, tuple(rest))


def entry(job_id: str, status: Mapping[str, str]) -> str:
    """One member's item in the callback's `results`: id, final state, and the result (its
    JSON as the status record holds it, copied, not re-encoded) or the error."""
    state = status.get("state", "")
    if state == "success":
        result = status.get("result") or "null"
        return '{"id":' + json.dumps(job_id) + ',"state":"success","result":' + result + "}"
    return json.dumps(
        {"id": job_id, "state": state, "error": status.get("error", "")},
        ensure_ascii=False,
    )


def attach(op: Op, job: Job) -> None:
    """Mark a final op of a group member so that its script records the member's end."""
    if op.kind not in FINAL_KINDS:
        return
    member = member_of(job)
    if member is None:
        return
    state = op.status.get("state", "dead")
    op.member = MemberEnd(member, job.id, state, entry(job.id, op.status))


def attach_raw(op: Op, raw: bytes) -> None:
    """As `attach`, for a message the worker refused before running it (an unknown workflow):
    read leniently, since only its group field matters here."""
    if op.kind not in FINAL_KINDS or b'"group"' not in raw:
        return
    try:
        job = decode_job(raw, max_bytes=len(raw) + 1)
    except InvalidJob:
        return
    attach(op, job)


def reap_end(job: Job, dead: Mapping[str, str]) -> MemberEnd | None:
    """The group end a reaper's dead letter (`dead`: its status) writes for a member."""
    member = member_of(job)
    if member is None:
        return None
    return MemberEnd(member, job.id, dead.get("state", "dead"), entry(job.id, dead))
