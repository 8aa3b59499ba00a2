"""Recorded durable steps of one job in Redis: one read per attempt, one conditional write per
step. The API workflows call is `workflow_worker/workflows/steps.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.scripts import lua_source

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["MARK", "StepStore"]

# The steps hash's own field: the enqueue its steps belong to (see steps_load-2.lua).
MARK = b"_run"


class StepStore:
    """The step scripts, registered on one Redis client (one per worker, shared by its jobs)."""

    __slots__ = ("_load", "_record", "client")

    def __init__(self, client: Any) -> None:
        self.client = client
        self._load: AsyncScript = client.register_script(lua_source("steps_load"))
        self._record: AsyncScript = client.register_script(lua_source("step_record"))

    async def load(self, keys: QueueKeys, job_id: str) -> dict[bytes, bytes]:
        """Every step recorded for this run of `job_id` (step key -> JSON result)."""
        flat = await self._load(keys=[keys.steps(job_id), keys.job(job_id)], args=[])
        found = {_bytes(flat[i]): _bytes(flat[i + 1]) for i in range(0, len(flat), 2)}
        found.pop(MARK, None)
        return found

    async def record(
        self,
        keys: QueueKeys,
        token: str,
        job_id: str,
        step: str,
        result: str,
        *,
        life_s: int,
        progress: bool,
        claimed_text: str = "",
    ) -> bool:
        """Record one step's result; False when the claim is no longer held (nothing written)."""
        written = await self._record(
            keys=[keys.processing, keys.steps(job_id), keys.job(job_id)],
            args=[token, step, result, life_s, "1" if progress else "0", claimed_text],
        )
        return int(written) == 1


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")
