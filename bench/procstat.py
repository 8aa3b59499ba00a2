"""What the benchmarks read about processes from /proc: CPU time and memory, summed over trees."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["process_tree", "pss_kib", "rss_kib", "tree_cpu", "tree_memory"]

TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_cpu(pids: Sequence[int]) -> float:
    """CPU seconds of these processes, plus their children that have exited and been reaped.

    Each live thread's scheduler run time (/proc/PID/task/TID/schedstat, nanoseconds) where the
    kernel keeps it: /proc/PID/stat counts in 10 ms ticks, and a quiet process's share of a
    30-second run is a handful of ticks, so summed over 19 processes the rounding alone would
    be larger than the difference being measured. Reaped children only exist in ticks.
    """
    total = 0.0
    for pid in pids:
        try:
            f = _stat_fields(pid)
        except OSError:
            continue
        threads = _schedstat_seconds(pid)
        own = int(f[11]) + int(f[12])
        total += (own / TICKS if threads is None else threads) + (int(f[13]) + int(f[14])) / TICKS
    return total


def _schedstat_seconds(pid: int) -> float | None:
    """Run time of all live threads of `pid`, in seconds; None without schedstat."""
    total = 0
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            total += int(Path(task.path, "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages split among the processes sharing them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(pids: Sequence[int]) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in KiB."""
    rss = pss = 0
    for pid in pids:
        try:
            rss += rss_kib(pid)
        except OSError:
            continue
        pss += pss_kib(pid)
    return rss, pss
