"""What `start` left running, kept in a JSON file so `status` and `stop` find it later."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ProcessRecord", "RunState", "load", "remove", "save"]


@dataclass(slots=True)
class ProcessRecord:
    """One detached process: its pid, what its command line must contain, its HTTP port."""

    pid: int
    marker: str
    port: int = 0
    log: str = ""


@dataclass(slots=True)
class RunState:
    """One load test in progress (local stack or cluster)."""

    target: str
    run_id: str
    queue: str
    started_at: float = field(default_factory=time.time)
    pushed: int = 0
    redis_url: str = ""
    redis: ProcessRecord | None = None
    workers: list[ProcessRecord] = field(default_factory=list)
    previous_mode: str | None = None
    kube_context: str | None = None
    namespace: str | None = None
    deployment: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        redis = data.pop("redis", None)
        workers = data.pop("workers", [])
        return cls(
            **data,
            redis=ProcessRecord(**redis) if redis else None,
            workers=[ProcessRecord(**w) for w in workers],
        )


def load(path: Path) -> RunState | None:
    """The recorded run, or None when there is none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return RunState.from_dict(json.loads(text))


def save(path: Path, state: RunState) -> None:
    """Write atomically and readable only by the owner: the Redis URL may hold a password."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(state.to_json())
    tmp.replace(path)


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
