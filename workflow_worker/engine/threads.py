"""The worker's bounded thread pool for sync code: plain `def` workflows, and any sync function
a feature needs to run off the event loop (`await call(fn, *args)`).

A thread cannot be killed. When the awaiting task is cancelled (the job's timeout, a cancel
request, the drain deadline), `call` raises `CancelledError` at once, so the attempt ends as
timed out or cancelled for the job's bookkeeping; the thread runs the function on to its end,
and its result or exception is discarded. Until it ends it holds one of the pool's threads
(and a retry of the job may start meanwhile).
A call still waiting for a free thread when it is cancelled never starts.

The pool's threads are daemon threads, started one by one as calls need them (a worker whose
workflows are all async starts none), so a function that never returns cannot keep the
process from exiting: `close()` waits a bounded time for running calls, then leaves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Threads", "call", "current", "loop_of_this_thread"]

log = logging.getLogger("workflow_worker.threads")
T = TypeVar("T")
# One unit of work: the future to resolve, its loop, and the call bound to its context.
_Work = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]
_STOP = None
# In a pool thread, the loop whose task awaits the call it runs.
_local = threading.local()


def loop_of_this_thread() -> asyncio.AbstractEventLoop | None:
    """The event loop waiting for the call this pool thread runs (None outside the pool)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    return loop


class Threads:
    """Up to `size` daemon threads running sync calls for one event loop's tasks."""

    def __init__(self, size: int, name: str = "workflow-sync") -> None:
        self.size = size
        self.name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for work
        self._queued = 0  # calls put but not yet taken by a thread
        self._busy = 0
        self._lock = threading.Lock()
        self._closed = False

    @property
    def started(self) -> int:
        """Threads started so far (0 until the first call)."""
        return len(self._threads)

    @property
    def busy(self) -> int:
        """Calls running in a thread now, including abandoned ones still on their way."""
        return self._busy

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` in one of the pool's threads, with the caller's context
        variables, and return its result (or raise its exception). See the module docstring
        for what cancellation does."""
        if self._closed:
            raise RuntimeError("the worker's thread pool is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        bound = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        self._work.put((loop, future, bound))
        self._grow()
        return await future

    def _grow(self) -> None:
        """Start a thread when the calls waiting outnumber the idle threads (up to `size`)."""
        with self._lock:
            self._queued += 1
            if self._queued <= self._idle or len(self._threads) >= self.size:
                return
            thread = threading.Thread(
                target=self._serve, name=f"{self.name}-{len(self._threads) + 1}", daemon=True
            )
            self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            work = self._work.get()
            if work is _STOP:
                return
            loop, future, bound = work
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            if future.cancelled():  # cancelled while it waited for a thread: never start it
                continue
            with self._lock:
                self._busy += 1
            _local.loop = loop
            try:
                result: Any = bound()
            except BaseException as exc:
                self._resolve(loop, future, None, exc)
            else:
                self._resolve(loop, future, result, None)
            finally:
                _local.loop = None
                with self._lock:
                    self._busy -= 1

    @staticmethod
    def _resolve(
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        result: Any,
        exc: BaseException | None,
    ) -> None:
        def settle() -> None:
            # Cancelled meanwhile (timeout, cancel request): the result is discarded.
            if future.done():
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

        # A closed loop raises RuntimeError: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the threads: each ends after its current call; wait up to `timeout` seconds,
        then leave any still running (they are daemon threads and cannot hold the exit)."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._work.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            left = deadline - time.monotonic()
            if left > 0:
                await asyncio.to_thread(thread.join, left)
        running = sum(t.is_alive() for t in self._threads)
        if running:
            log.warning(
                "%d sync workflow call(s) still running at exit; their results are discarded",
                running,
            )


# The pool of the worker running the current task: set by the worker, read by `call`, so a
# feature deep inside a job reaches its worker's pool without it being passed down.
current: contextvars.ContextVar[Threads] = contextvars.ContextVar("workflow_worker_threads")
_fallback: Threads | None = None


async def call(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run the sync `fn(*args, **kwargs)` in the current worker's thread pool (outside a
    worker, a small process-wide pool) and return its result."""
    pool = current.get(None)
    if pool is None:
        global _fallback
        if _fallback is None:
            _fallback = Threads(4, name="workflow-sync-default")
        pool = _fallback
    return await pool.call(fn, *args, **kwargs)
