"""Every Redis key name of one queue, derived in one place.

All keys of a queue share one Redis Cluster hash slot, so multi-key scripts work on Cluster:
derived keys carry the queue name as their hash tag (`{workflow:queue}:processing` hashes like
`workflow:queue`). A queue name that already has a hash tag (`{jobs}:high`) keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["QueueKeys", "hash_tag_base"]


def hash_tag_base(queue: str) -> str:
    """The prefix for derived keys: the queue itself if it carries a hash tag, else `{queue}`."""
    start = queue.find("{")
    if start != -1:
        end = queue.find("}", start + 1)
        if end > start + 1:
            return queue
    return "{" + queue + "}"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """Key names for one queue (see docs/contract.md)."""

    queue: str
    processing: str
    delayed: str
    dead: str
    dead_blobs: str
    redeliveries: str
    workers: str
    workers_info: str
    pulse: str
    job_prefix: str
    cancel_prefix: str
    unique_prefix: str
    cron_prefix: str
    ratelimit_prefix: str
    events: str
    group_prefix: str
    steps_prefix: str
    recent: str

    @classmethod
    def for_queue(cls, queue: str) -> QueueKeys:
        base = hash_tag_base(queue)
        return cls(
            queue=queue,
            processing=f"{base}:processing",
            delayed=f"{base}:delayed",
            dead=f"{base}:dead",
            dead_blobs=f"{base}:dead:blobs",
            redeliveries=f"{base}:redeliveries",
            workers=f"{base}:workers",
            workers_info=f"{base}:workers:info",
            pulse=f"{base}:workers:pulse",
            job_prefix=f"{base}:job:",
            cancel_prefix=f"{base}:cancel:",
            unique_prefix=f"{base}:unique:",
            cron_prefix=f"{base}:cron:",
            ratelimit_prefix=f"{base}:ratelimit:",
            events=f"{base}:events",
            group_prefix=f"{base}:group:",
            steps_prefix=f"{base}:steps:",
            recent=f"{base}:recent",
        )

    def job(self, job_id: str) -> str:
        """Status record of one job."""
        return self.job_prefix + job_id

    def cancel(self, job_id: str) -> str:
        """Cancel request of one job (exists while the request stands)."""
        return self.cancel_prefix + job_id

    def unique(self, unique_key: str) -> str:
        """Lock of a unique key: holds the id of the job that owns it."""
        return self.unique_prefix + unique_key

    def group(self, group_id: str) -> str:
        """Join state of one group or chain link (docs/composition.md)."""
        return self.group_prefix + group_id

    def steps(self, job_id: str) -> str:
        """Recorded durable steps of one job (step key -> JSON result), next to its status
        record in the same hash slot; a prefix of its own, so no job id can name it."""
        return self.steps_prefix + job_id
