"""Detached processes: started in their own session so they outlive the command (and a Ctrl-C in
its terminal), found again later by pid, and stopped only if the pid is still ours."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["alive", "spawn_detached", "terminate"]


def spawn_detached(
    argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session with its output in `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _reap(pid: int) -> bool:
    """Collect `pid` if it is our exited child; True when it was."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]


def alive(pid: int, marker: str = "") -> bool:
    """Whether `pid` runs and (where /proc exists) its command line contains `marker`.

    The marker check keeps a recycled pid from being mistaken for, and killed as, ours.
    """
    if pid <= 0 or _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    if _proc_state(pid) in ("Z", "X"):
        return False
    if marker:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            # Empty while an exec is still setting up the new image: Popen returns once the
            # exec is past its point of no return, before the arguments are in place, and on
            # a loaded machine a caller can look in between. Such a pid is alive and ours.
            return not cmdline or marker.encode() in cmdline
    return True


def _wait_gone(pid: int, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid, marker):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def terminate(pid: int, marker: str, timeout: float) -> str:
    """SIGTERM, wait up to `timeout`, then SIGKILL; returns what happened."""
    if not alive(pid, marker):
        return "not running"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, marker, timeout):
        return "stopped"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, marker, 5.0)
    return "killed"
