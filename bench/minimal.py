"""The floor of this design: a BRPOP-and-semaphore loop with no reliability features.

No claim, no lease, no status, no retries: a job popped by a process that dies is lost. It
reports completions by SETting a counter every 50 ms (not per job), so it pays nothing per job
beyond BRPOP. Usage: python -m bench.minimal REDIS_URL QUEUE CONCURRENCY
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import redis.asyncio as aioredis
import uvloop


async def main(url: str, queue: str, concurrency: int) -> None:
    client = aioredis.Redis.from_url(url)
    sem = asyncio.Semaphore(concurrency)
    done = 0
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def run(raw: bytes | str) -> None:
        nonlocal done
        try:
            job = json.loads(raw)
            seconds = float(job.get("payload", {}).get("seconds", 0))
            if seconds:
                await asyncio.sleep(seconds)
        finally:
            done += 1
            sem.release()

    async def report() -> None:
        while True:
            await client.set(f"{queue}:minimal:done", done)
            await asyncio.sleep(0.05)

    reporter = asyncio.create_task(report())
    tasks: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        await sem.acquire()
        item = await client.brpop([queue], timeout=1)
        if item is None:
            sem.release()
            continue
        task = asyncio.create_task(run(item[1]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    reporter.cancel()
    await client.aclose()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
