"""The status view: one frame of numbers and a progress bar, redrawn in place like `watch`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["Snapshot", "bar", "render", "watch"]

# Home the cursor and clear the screen: a full redraw, as `watch` does.
CLEAR = "\x1b[H\x1b[2J"


@dataclass(slots=True)
class Snapshot:
    """What one status frame shows."""

    target: str
    where: str
    queue: str
    pushed: int
    done: int
    queued: int
    inflight: int
    delayed: int = 0
    dead: int = 0
    active: int | None = None
    pods: int = 0
    pods_ready: int = 0
    pods_desired: int = 0
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.pushed > 0 and self.done >= self.pushed and self.inflight == 0


def bar(done: int, total: int, width: int = 40) -> str:
    """`[#####.....]  50/100  50%`."""
    share = min(1.0, done / total) if total > 0 else 0.0
    filled = int(width * share)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:>6}/{total:<6} {share:4.0%}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def render(snap: Snapshot) -> list[str]:
    """The frame's lines."""
    active = "?" if snap.active is None else str(snap.active)
    lines = [
        f"load test  target={snap.target}  {snap.where}  queue={snap.queue}  "
        f"running {_clock(snap.elapsed)}",
        "",
        f"done/pushed  {bar(snap.done, snap.pushed)}",
        "",
        f"queue depth  {snap.queued:>8}      delayed      {snap.delayed:>8}",
        f"in flight    {snap.inflight:>8}      dead letters {snap.dead:>8}",
        f"active jobs  {active:>8}      pods         {snap.pods:>4} "
        f"(ready {snap.pods_ready}, desired {snap.pods_desired})",
    ]
    lines += [f"  {note}" for note in snap.notes]
    return lines


def watch(
    fetch: Callable[[], Snapshot],
    out: TextIO,
    *,
    once: bool = False,
    interval: float = 1.0,
    until_done: bool = False,
) -> Snapshot:
    """Print frames: redrawn in place on a terminal, as plain blocks otherwise."""
    interactive = out.isatty()
    while True:
        snap = fetch()
        frame = "\n".join(render(snap))
        if interactive:
            out.write(CLEAR + frame + "\n")
        else:
            out.write(frame + "\n\n")
        out.flush()
        if once or (until_done and snap.finished):
            return snap
        time.sleep(interval)
