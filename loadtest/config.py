"""The load test's settings, read once from the environment (the worker's own are in
`workflow_worker.settings`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MARKER", "ROOT", "WORKFLOW", "ConfigError", "LoadTestConfig"]

ROOT = Path(__file__).resolve().parent.parent
# Every synthetic job carries this workflow name and `"loadtest": true` in its payload, so stop
# can tell them from real jobs sharing the queue.
WORKFLOW = "loadtest"
MARKER = "loadtest"
_TARGETS = {"local": "local", "k8s": "k8s", "kubernetes": "k8s", "cluster": "k8s"}


class ConfigError(ValueError):
    """A load-test variable has a value we cannot use; the message names it."""


def _number(environ: Mapping[str, str], var: str, default: float, lo: float) -> float:
    raw = environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < lo:
        raise ConfigError(f"{var}={raw!r} must be a number of at least {lo:g}")
    return value


def _target(environ: Mapping[str, str]) -> str:
    raw = environ.get("TARGET", "").strip().lower() or "local"
    if raw not in _TARGETS:
        raise ConfigError(f"TARGET={raw!r} is not valid: expected local or k8s")
    return _TARGETS[raw]


@dataclass(frozen=True, slots=True)
class LoadTestConfig:
    """Where the load test runs and how; `environ` is kept for the worker variables passed on."""

    target: str = "local"
    state_dir: Path = ROOT / ".loadtest"
    redis_url: str | None = None
    workers: int = 2
    benchmark_min: float = 2.0
    benchmark_max: float = 30.0
    drain_timeout: float = 120.0
    kube_context: str | None = None
    namespace: str | None = None
    deployment: str = "workflow-worker"
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LoadTestConfig:
        env = dict(os.environ if environ is None else environ)
        lo = _number(env, "WORKER_BENCHMARK_MIN_SECONDS", 2.0, 0.0)
        hi = _number(env, "WORKER_BENCHMARK_MAX_SECONDS", 30.0, 0.0)
        if lo > hi:
            raise ConfigError(
                f"WORKER_BENCHMARK_MIN_SECONDS ({lo:g}) is above WORKER_BENCHMARK_MAX_SECONDS "
                f"({hi:g})"
            )
        workers = _number(env, "LOADTEST_WORKERS", 2, 1)
        if workers != int(workers):
            raise ConfigError(f"LOADTEST_WORKERS={workers:g} must be a whole number")
        return cls(
            target=_target(env),
            state_dir=Path(env.get("LOADTEST_STATE_DIR") or ROOT / ".loadtest"),
            redis_url=env.get("REDIS_URL") or None,
            workers=int(workers),
            benchmark_min=lo,
            benchmark_max=hi,
            drain_timeout=_number(env, "LOADTEST_DRAIN_TIMEOUT", max(60.0, 2 * hi), 0.0),
            kube_context=env.get("KUBE_CONTEXT") or None,
            namespace=env.get("NAMESPACE") or None,
            deployment=env.get("DEPLOYMENT") or "workflow-worker",
            environ=env,
        )

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"
