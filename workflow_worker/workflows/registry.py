"""Load the application's workflow registry named by WORKER_WORKFLOWS, and check the settings
that name its workflows."""

from __future__ import annotations

import difflib
import importlib
import sysconfig
import traceback
from collections.abc import Mapping
from types import ModuleType

from workflow_worker.errors import ConfigError
from workflow_worker.settings import Settings
from workflow_worker.workflows.context import WorkflowRegistry

__all__ = ["check_rate_limits", "load_registry"]

VARIABLE = "WORKER_WORKFLOWS"
_SHOWN = 10  # workflow names listed in an error; a big registry would drown the message


def load_registry(path: str) -> WorkflowRegistry:
    """Import `module:attribute` and check it maps names to async callables."""
    module_name, _, attr = path.partition(":")
    module = _import(path, module_name)
    if not hasattr(module, attr):
        raise ConfigError(VARIABLE, path, reason=f"module {module_name} has no {attr!r}")
    registry = getattr(module, attr)
    if not isinstance(registry, Mapping):
        raise ConfigError(VARIABLE, path, "a mapping of workflow name to async function")
    for name, func in registry.items():
        if not isinstance(name, str) or not callable(func):
            raise ConfigError(
                VARIABLE, path, f"string keys and callable values (bad entry {name!r})"
            )
    return registry


def _import(path: str, module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except SyntaxError as exc:
        where = f"{exc.filename} line {exc.lineno}"
        reason = f"syntax error in {where}: {exc.msg}"
        raise ConfigError(VARIABLE, path, reason=reason) from exc
    except ModuleNotFoundError as exc:
        if exc.name and (module_name + ".").startswith(exc.name + "."):
            reason = (
                f"no module named {exc.name!r}: run from the directory that holds it, "
                "or add that directory to PYTHONPATH"
            )
        else:
            reason = f"{module_name} imports {exc.name!r}, which is not installed"
        raise ConfigError(VARIABLE, path, reason=reason) from exc
    except Exception as exc:
        reason = f"importing {module_name} raised {type(exc).__name__}: {exc}{_where(exc)}"
        raise ConfigError(VARIABLE, path, reason=reason) from exc


def _where(exc: BaseException) -> str:
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
