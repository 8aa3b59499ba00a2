"""Recorded durable steps of one job in Redis: one read per attempt, one conditional write per
step. The API workflows call is `workflow_worker/workflows/steps.py`.

The write is the call a step makes every time, so it goes on a connection of its own
(`ScriptLine`, as the batcher's acknowledgements do), skipping the client's pool checkout and
task wake-ups; a Cluster client, which has no single pool, goes through the client.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import hiredis
from redis.exceptions import NoScriptError

from workflow_worker.connection import SOCKET_TIMEOUT
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.scriptline import Reply, ScriptLine
from workflow_worker.engine.scripts import lua_source

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["MARK", "NOW", "StepStore"]

# The steps hash's own field: the enqueue its steps belong to (see steps_load-2.lua).
MARK = b"_run"
# The load's own last pair: the server's clock when it read the steps.
NOW = b"_now"


class StepStore:
    """The step scripts, registered on one Redis client (one per worker, shared by its jobs)."""

    __slots__ = ("_line", "_load", "_opening", "_record", "client")

    def __init__(self, client: Any) -> None:
        self.client = client
        self._load: AsyncScript = client.register_script(lua_source("steps_load"))
        self._record: AsyncScript = client.register_script(lua_source("step_record"))
        self._line = ScriptLine(client, SOCKET_TIMEOUT)
        # Steps of many jobs may find the line closed at once: one of them opens it.
        self._opening = asyncio.Lock()

    async def load(self, keys: QueueKeys, job_id: str) -> dict[bytes, bytes]:
        """Every step recorded for this run of `job_id` (step key -> JSON result)."""
        found, _ = await self.load_timed(keys, job_id)
        return found

    async def load_timed(self, keys: QueueKeys, job_id: str) -> tuple[dict[bytes, bytes], float]:
        """The recorded steps, and the server's clock (Unix seconds) when they were read."""
        flat = await self._load(keys=[keys.steps(job_id), keys.job(job_id)], args=[])
        found = {_bytes(flat[i]): _bytes(flat[i + 1]) for i in range(0, len(flat), 2)}
        found.pop(MARK, None)
        return found, float(found.pop(NOW))

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
        fixed = [keys.processing, keys.steps(job_id), keys.job(job_id)]
        flag = "1" if progress else "0"
        args: list[str | int] = [token, step, result, life_s, flag, claimed_text]
        if not self._line.supported:
            written = await self._record(keys=fixed, args=args)
        else:
            written = await self._on_line(_pack("EVALSHA", self._record.sha, 3, *fixed, *args))
        return int(written) == 1

    async def close(self) -> None:
        """Give the connection of the writes back (at the worker's exit)."""
        if self._line.supported:
            await self._line.close()

    async def _on_line(self, command: bytes) -> Reply:
        if not self._line.ready:
            async with self._opening:
                if not self._line.ready:
                    await self._line.open()
        try:
            return await self._line.call(command)
        except NoScriptError:
            # SCRIPT LOAD then EVALSHA, as the client does: the documented ACL grants no EVAL.
            await self._line.call(_pack("SCRIPT", "LOAD", self._record.script))
            return await self._line.call(command)


def _pack(*parts: Any) -> bytes:
    packed: bytes = hiredis.pack_command(parts)
    return packed


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")
