"""Count load-test jobs still waiting or running, or drop the waiting ones.

Self-contained on purpose: `loadtest.k8s` ships this file's text into a worker pod as
`python -c <text> count|drop <lua>` (the image has the worker package and redis-py, not this
one), and the local target imports the same functions. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from workflow_worker.connection import connect_sync
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.settings import Settings

MARKER = "loadtest"


def is_marked(raw: bytes | str) -> bool:
    """Whether a job text is a load-test job (the same test as drop_marked-2.lua)."""
    try:
        job = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(job, dict):
        return False
    payload = job.get("payload")
    return job.get(MARKER) is True or (isinstance(payload, dict) and payload.get(MARKER) is True)


def count(client: Any, keys: QueueKeys) -> dict[str, int]:
    """Queue sizes, plus how many claimed jobs are load-test jobs (a bounded scan)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.llen(keys.queue)
        pipe.zcard(keys.delayed)
        pipe.hvals(keys.processing)
        queued, delayed, claimed = pipe.execute()
    return {
        "queued": int(queued),
        "delayed": int(delayed),
        "inflight": len(claimed),
        "inflight_marked": sum(1 for raw in claimed if is_marked(raw)),
    }


def drop(client: Any, keys: QueueKeys, lua: str) -> dict[str, int]:
    """Remove waiting load-test jobs from the queue and the delayed set; then count."""
    script = client.register_script(lua)
    removed, delayed = script(keys=[keys.queue, keys.delayed], args=[MARKER])
    return {"dropped_queued": int(removed), "dropped_delayed": int(delayed), **count(client, keys)}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("count", "drop") or (argv[0] == "drop" and len(argv) < 2):
        print("usage: drain.py count | drain.py drop LUA_SOURCE", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    keys = QueueKeys.for_queue(settings.queue)
    client = connect_sync(settings)
    try:
        out = count(client, keys) if argv[0] == "count" else drop(client, keys, argv[1])
    finally:
        client.close()
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
