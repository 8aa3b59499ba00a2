"""Push notifications between producers and workers, so idle workers need not poll.

Scripts publish on each queue's channel `{Q}:events`: `cancel <job id>` when a cancel is
requested, `due <ms>` when a delayed job is added. A worker subscribes to the channels of its
queues. Messages can be missed (a reconnect), so the pollers they replace still run, slowly:
cancel requests are also checked at every heartbeat and the promoter wakes at least once per
heartbeat interval.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

__all__ = ["EventListener", "parse_event"]

log = logging.getLogger("workflow_worker.events")


def parse_event(data: bytes | str) -> tuple[str, str]:
    """`(kind, argument)` of one message; unknown text gives `("", "")`."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    kind, _, arg = text.partition(" ")
    return (kind, arg) if kind in ("cancel", "due") else ("", "")


class EventListener:
    """Subscribes to the queues' channels and hands each message to `on_event`."""

    def __init__(
        self,
        client: Any,
        channels: dict[str, str],
        on_event: Callable[[str, str, str], None],
        on_subscribed: Callable[[], None],
    ) -> None:
        self.client = client
        self.channels = channels  # channel -> queue name
        self.on_event = on_event
        self.on_subscribed = on_subscribed

    async def run(self) -> None:
        """Listen until cancelled; reconnect with backoff after errors."""
        if not hasattr(self.client, "pubsub"):
            log.warning(
                "this Redis client has no pub/sub: cancel requests and delayed jobs are "
                "picked up by polling, once per heartbeat interval"
            )
            return
        delay = 0.1
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                log.warning("event channel lost, resubscribing in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 10.0)

    async def _listen(self) -> None:
        async with self.client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(*self.channels)
            # Messages sent while we were not subscribed are lost: let the pollers catch up.
            self.on_subscribed()
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                channel = message["channel"]
                name = channel.decode() if isinstance(channel, bytes) else str(channel)
                kind, arg = parse_event(message["data"])
                if kind:
                    self.on_event(self.channels.get(name, ""), kind, arg)
