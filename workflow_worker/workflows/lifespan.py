"""WORKER_LIFESPAN: an async context manager run once per worker process, around its whole life.

    @contextlib.asynccontextmanager
    async def lifespan():
        pool = await create_pool()
        yield {"db": pool}          # every job's ctx.state
        await pool.close()

It is entered before the worker claims its first job and left after the last one is stored
(after the drain), as a Starlette or FastAPI lifespan is around an application.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from workflow_worker.errors import ConfigError
from workflow_worker.workflows.registry import import_target, where

__all__ = ["Lifespan", "lifespan_state", "load_lifespan"]

VARIABLE = "WORKER_LIFESPAN"
log = logging.getLogger("workflow_worker")
Lifespan = Callable[[], AbstractAsyncContextManager[Any]]


def load_lifespan(path: str) -> Lifespan | None:
    """The factory named by `module:function` (None for ""); ConfigError naming the variable."""
    if not path:
        return None
    factory = import_target(path, VARIABLE)
    if not callable(factory):
        raise ConfigError(VARIABLE, path, reason=f"{path} is not callable")
    return factory  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def lifespan_state(factory: Lifespan | None, path: str) -> AsyncIterator[Any]:
    """Enter the lifespan and yield its state; a failure to start is a ConfigError naming
    WORKER_LIFESPAN, a failure at the end is logged (the worker is leaving anyway)."""
    if factory is None:
        yield None
        return
    try:
        manager = factory()
        enter, leave = type(manager).__aenter__, type(manager).__aexit__
    except AttributeError:
        raise ConfigError(
            VARIABLE,
            path,
            reason="it must return an async context manager (use asynccontextmanager)",
        ) from None
    except Exception as exc:
        raise _failed(path, "calling it", exc) from exc
    try:
        state = await enter(manager)
    except Exception as exc:
        raise _failed(path, "starting it", exc) from exc
    try:
        yield state
    except BaseException as exc:
        if not await leave(manager, type(exc), exc, exc.__traceback__):
            raise
    else:
        try:
            await leave(manager, None, None, None)
        except Exception:
            log.exception("WORKER_LIFESPAN=%s raised while the worker was stopping", path)


def _failed(path: str, doing: str, exc: BaseException) -> ConfigError:
    reason = f"{doing} raised {type(exc).__name__}: {exc}{where(exc)}"
    return ConfigError(VARIABLE, path, reason=reason)
