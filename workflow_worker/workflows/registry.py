"""Load the application's workflow registry named by WORKER_WORKFLOWS, and check the settings
that name its workflows."""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import sysconfig
import traceback
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from workflow_worker.errors import ConfigError
from workflow_worker.settings import Settings
from workflow_worker.workflows.context import WorkflowRegistry

__all__ = [
    "check_rate_limits",
    "check_registry",
    "import_target",
    "is_sync",
    "load_registry",
    "where",
]

VARIABLE = "WORKER_WORKFLOWS"
_SHOWN = 10  # workflow names listed in an error; a big registry would drown the message


def load_registry(path: str) -> WorkflowRegistry:
    """Import `module:attribute` and check it maps names to workflow functions."""
    registry = import_target(path, VARIABLE)
    check_registry(registry, path)
    return registry  # type: ignore[no-any-return]


def check_registry(registry: object, path: str | None) -> None:
    """Refuse a registry that is not a mapping of names to `async def` or plain `def`
    functions, naming the first bad workflow (ConfigError on WORKER_WORKFLOWS)."""
    if not isinstance(registry, Mapping):
        raise ConfigError(VARIABLE, path, "a mapping of workflow name to workflow function")
    for name, func in registry.items():
        if not isinstance(name, str):
            raise ConfigError(VARIABLE, path, f"string keys (bad key {name!r})")
        try:
            is_sync(func)
        except TypeError as exc:
            raise ConfigError(VARIABLE, path, reason=f"workflow {name!r} is {exc}") from None


def is_sync(func: object) -> bool:
    """False for an `async def` workflow, True for a plain `def` one (run in a thread);
    TypeError naming what it is for anything else."""
    target = func
    while isinstance(target, functools.partial):
        target = target.func
    if isinstance(target, type):
        return _refuse(f"a class ({target.__name__}), not a function")
    if inspect.isasyncgenfunction(target):
        return _refuse("an async generator function; a workflow returns once: use async def")
    if inspect.isgeneratorfunction(target):
        return _refuse("a generator function; a workflow returns once: use def or async def")
    if inspect.iscoroutinefunction(target):
        return False
    if not callable(target):
        return _refuse(f"a {type(target).__name__}, not a function")
    if inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target):
        return True
    call = type(target).__call__  # a callable object: its __call__ decides
    if inspect.iscoroutinefunction(call):
        return False
    if inspect.isasyncgenfunction(call) or inspect.isgeneratorfunction(call):
        return _refuse(f"a {type(target).__name__} whose __call__ is a generator")
    return True


def _refuse(what: str) -> bool:
    raise TypeError(what)


def import_target(path: str, variable: str) -> Any:
    """The object `module:attribute` names; ConfigError naming `variable` if it cannot be had."""
    module_name, _, attr = path.partition(":")
    module = _import(path, module_name, variable)
    if not hasattr(module, attr):
        raise ConfigError(variable, path, reason=f"module {module_name} has no {attr!r}")
    return getattr(module, attr)


def _import(path: str, module_name: str, variable: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except SyntaxError as exc:
        place = f"{exc.filename} line {exc.lineno}"
        reason = f"syntax error in {place}: {exc.msg}"
        raise ConfigError(variable, path, reason=reason) from exc
    except ModuleNotFoundError as exc:
        if exc.name and (module_name + ".").startswith(exc.name + "."):
            reason = (
                f"no module named {exc.name!r}: run from the directory that holds it, "
                "or add that directory to PYTHONPATH"
            )
        else:
            reason = f"{module_name} imports {exc.name!r}, which is not installed"
        raise ConfigError(variable, path, reason=reason) from exc
    except Exception as exc:
        reason = f"importing {module_name} raised {type(exc).__name__}: {exc}{where(exc)}"
        raise ConfigError(variable, path, reason=reason) from exc


def where(exc: BaseException) -> str:
    """` (file line N)` of the application's line that raised: the innermost frame outside
    Python's own library and installed packages, else the innermost frame with a file."""
    library = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    own = [f for f in frames if not f.filename.startswith(tuple(library))]
    chosen = (own or frames)[-1:]
    return "".join(f" ({f.filename} line {f.lineno})" for f in chosen)


def check_rate_limits(settings: Settings, registry: WorkflowRegistry) -> None:
    """Fail at start-up when WORKER_RATE_LIMITS names a workflow the registry does not have:
    a typo there would otherwise leave the real workflow without its limit.

    Benchmark mode runs every job as a sleep whatever its workflow, so any name goes there.
    """
    if settings.benchmark_mode:
        return
    unknown = sorted(set(settings.rate_limits) - set(registry))
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, list(registry), n=1)
    if close:
        hint = f"did you mean {close[0]!r}?"
    else:
        names = sorted(registry)
        more = ", ..." if len(names) > _SHOWN else ""
        hint = f"its workflows are {', '.join(names[:_SHOWN])}{more}" if names else "it has none"
    reason = (
        f"it limits {name!r}, which is not a workflow of "
        f"WORKER_WORKFLOWS={settings.workflows}; {hint}"
    )
    raise ConfigError("WORKER_RATE_LIMITS", None, reason=reason)
