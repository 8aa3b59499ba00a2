"""What an operator can do from the console, through the producer client's own calls and
scripts: cancel a job, retry a failed or dead one, requeue or purge dead letters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from workflow_worker.console.reader import Reader
from workflow_worker.producer.requests import DeadLetter, requeue_call

__all__ = ["ACTIONS", "Actions", "Done"]

ACTIONS = ("cancel", "retry", "requeue", "purge")


@dataclass(frozen=True, slots=True)
class Done:
    """The answer to one action: whether it did what was asked, and a sentence saying what."""

    ok: bool
    message: str
    count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Actions:
    """Actions on the queues a `Reader` reads."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    async def cancel(self, queue: str | None, job_id: str) -> Done:
        """Cancel a queued, delayed or running job (see `cancel-3.lua` for the answers)."""
        answer = await self.reader.client(queue).cancel(job_id)
        if answer == "cancelled":
            return Done(True, f"job {job_id} was cancelled", 1)
        if answer == "cancelling":
            return Done(True, f"job {job_id} is running: its worker was told to stop it", 1)
        if answer == "unknown":
            return Done(False, f"job {job_id} has no status record (unknown or expired)")
        return Done(False, f"job {job_id} had already ended ({answer})")

    async def retry(self, queue: str | None, job_id: str) -> Done:
        """Put a failed or dead job back on its queue with fresh attempts, from its newest
        dead-letter entry (where its message is kept)."""
        client = self.reader.client(queue)
        entries = await self.reader.dead_of(client.keys.queue, job_id)
        if not entries:
            return Done(False, f"job {job_id} has no dead letter left to retry it from")
        if await self._requeue(queue, entries[0]):
            return Done(True, f"job {job_id} is queued again with fresh attempts", 1)
        return Done(False, f"job {job_id}'s dead letter was taken by someone else meanwhile")

    async def requeue(self, queue: str | None, digest: str) -> Done:
        """Requeue the dead-letter entry named by `digest` (see `reader.dead_digest`)."""
        entry = await self.reader.find_dead(queue, digest)
        if entry is None:
            return Done(False, "that dead letter is no longer there (requeued or purged)")
        if await self._requeue(queue, entry):
            job = entry.entry.get("job_id") or "without an id"
            return Done(True, f"dead letter of job {job} is queued again", 1)
        return Done(False, "that dead letter was taken by someone else meanwhile")

    async def purge(self, queue: str | None) -> Done:
        """Delete every dead letter of the queue (and the texts kept beside them)."""
        count = await self.reader.client(queue).purge_dead()
        return Done(True, f"purged {count} dead letters", count)

    async def _requeue(self, queue: str | None, entry: DeadLetter) -> bool:
        # The client's own requeue, for an entry found by content rather than by position.
        client = self.reader.client(queue)
        call = requeue_call(entry, client.keys)
        return bool(await client.scripts.requeue_dead(keys=call.keys, args=call.args))
