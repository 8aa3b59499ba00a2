"""`Workflows`: a registry built with decorators, with a policy per workflow and per-job hooks.

It is a read-only mapping of name to function, so `WORKER_WORKFLOWS` can name it exactly as it
names a plain dict:

    workflows = Workflows()

    @workflows.workflow(timeout=30, max_attempts=5, no_retry_on=(ValueError,))
    async def resize(payload, ctx): ...

`queue=` declares where a workflow's jobs go: a `Client(workflows=workflows)` sends them there.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from workflow_worker.settings import is_queue_name
from workflow_worker.workflows.context import JobContext
from workflow_worker.workflows.registry import is_sync

__all__ = ["Hooks", "Policy", "Workflows"]

F = TypeVar("F", bound=Callable[..., Any])
ExceptionTypes = tuple[type[BaseException], ...]
BeforeHook = Callable[[JobContext], Awaitable[None]]
AfterHook = Callable[[JobContext, Any], Awaitable[None]]
FailureHook = Callable[[JobContext, BaseException], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Policy:
    """What one workflow asks of the worker. None falls back to the job's own field, then to
    WORKER_JOB_TIMEOUT / WORKER_MAX_ATTEMPTS. A job's own `timeout` or `max_attempts` (given
    at enqueue) wins over the policy."""

    timeout: float | None = None
    max_attempts: int | None = None
    retry_on: ExceptionTypes = ()
    no_retry_on: ExceptionTypes = ()

    def retries(self, exc: BaseException) -> bool:
        """Whether a failure with `exc` may be retried (attempts permitting)."""
        if self.no_retry_on and isinstance(exc, self.no_retry_on):
            return False
        return not self.retry_on or isinstance(exc, self.retry_on)


@dataclass(slots=True)
class Hooks:
    """Per-job hooks, in registration order. A hook that raises is logged and never changes
    the job's outcome."""

    before: list[BeforeHook] = field(default_factory=list)
    after: list[AfterHook] = field(default_factory=list)
    failure: list[FailureHook] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.before or self.after or self.failure)


class Workflows(Mapping[str, Callable[..., Any]]):
    """A workflow registry filled by decorators; a `Mapping` of name to function."""

    def __init__(self) -> None:
        self._funcs: dict[str, Callable[..., Any]] = {}
        self.policies: dict[str, Policy] = {}
        self.queues: dict[str, str] = {}  # workflow -> its declared queue, when it declares one
        self.hooks = Hooks()

    @overload
    def workflow(self, name: F, /) -> F: ...

    @overload
    def workflow(
        self,
        name: str | None = None,
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        retry_on: ExceptionTypes = (),
        no_retry_on: ExceptionTypes = (),
        queue: str | None = None,
    ) -> Callable[[F], F]: ...

    def workflow(
        self,
        name: Any = None,
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        retry_on: ExceptionTypes = (),
        no_retry_on: ExceptionTypes = (),
        queue: str | None = None,
    ) -> Any:
        """Register the decorated `async def` or `def` function under `name` (default: its
        own name); `@workflows.workflow` without parentheses works too. `timeout` (seconds per
        attempt) and `max_attempts` apply to its jobs that do not set their own; `retry_on`
        retries only those exceptions, `no_retry_on` never retries those (both checked with
        isinstance; `Retry` and `Permanent` always win). `queue` is where a client given this
        registry (`Client(workflows=...)`) sends its jobs; a worker must consume that queue."""
        if callable(name):
            return self.workflow()(name)
        policy = _policy(timeout, max_attempts, retry_on, no_retry_on)

        def register(func: F) -> F:
            key = name or getattr(func, "__name__", "")
            if not key:
                raise ValueError(f"give a name for {func!r}")
            if key in self._funcs:
                raise ValueError(f"workflow {key!r} is registered twice")
            if queue is not None and not is_queue_name(queue):
                raise ValueError(
                    f"workflow {key!r}: queue must be one queue name as WORKER_QUEUE takes it "
                    f"(non-empty, no comma, no surrounding blanks): {queue!r}"
                )
            try:
                is_sync(func)
            except TypeError as exc:
                raise TypeError(f"workflow {key!r} is {exc}") from None
            self._funcs[key] = func
            if policy != Policy():
                self.policies[key] = policy
            if queue is not None:
                self.queues[key] = queue
            return func

        return register

    def queue_of(self, name: str) -> str | None:
        """The queue workflow `name` declared with `queue=`, or None (the client's own)."""
        return self.queues.get(name)

    def before_job(self, hook: BeforeHook) -> BeforeHook:
        """Register `async def hook(ctx)`, awaited before each attempt of every workflow."""
        self.hooks.before.append(_async_hook(hook))
        return hook

    def after_job(self, hook: AfterHook) -> AfterHook:
        """Register `async def hook(ctx, result)`, awaited after each attempt that succeeds."""
        self.hooks.after.append(_async_hook(hook))
        return hook

    def on_failure(self, hook: FailureHook) -> FailureHook:
        """Register `async def hook(ctx, exc)`, awaited after each attempt that raises (also
        one that will be retried; `ctx.attempt` and `ctx.max_attempts` tell which)."""
        self.hooks.failure.append(_async_hook(hook))
        return hook

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self._funcs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._funcs)

    def __len__(self) -> int:
        return len(self._funcs)

    def __repr__(self) -> str:
        return f"Workflows({sorted(self._funcs)})"


def _async_hook(hook: Any) -> Any:
    if not inspect.iscoroutinefunction(hook):
        raise TypeError(f"a job hook must be an async def function: {hook!r}")
    return hook


def _policy(
    timeout: float | None,
    max_attempts: int | None,
    retry_on: ExceptionTypes,
    no_retry_on: ExceptionTypes,
) -> Policy:
    """The checked policy of one `@workflows.workflow(...)` (ValueError/TypeError naming the
    argument)."""
    if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds: {timeout!r}")
    if max_attempts is not None and (
        isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
    ):
        raise ValueError(f"max_attempts must be a positive integer: {max_attempts!r}")
    for label, types in (("retry_on", retry_on), ("no_retry_on", no_retry_on)):
        if not isinstance(types, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in types
        ):
            raise TypeError(f"{label} must be a tuple of exception classes: {types!r}")
    return Policy(None if timeout is None else float(timeout), max_attempts, retry_on, no_retry_on)
