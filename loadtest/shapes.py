"""Load shapes: ramp, soak and spike, picked with LOADTEST_SHAPE (or `run_locust --shape`).

Each shape scales to the run's own options: `--users` is the peak, `--spawn-rate` the ramp speed,
and `--run-time` the length (a shape ends the run itself: locust applies --run-time only to runs
without a shape).
"""

from __future__ import annotations

import math
import os
import time

from locust import LoadTestShape

__all__ = ["SHAPES", "RampShape", "SoakShape", "SpikeShape", "selected_shape"]

DEFAULT_SECONDS = 300


class _ScaledShape(LoadTestShape):
    abstract = True
    use_common_options = True

    def _options(self) -> tuple[int, float, float]:
        opts = self.runner.environment.parsed_options if self.runner is not None else None
        peak = int(getattr(opts, "num_users", 0) or 10)
        rate = float(getattr(opts, "spawn_rate", 0) or peak)
        seconds = float(getattr(opts, "run_time", 0) or DEFAULT_SECONDS)
        return peak, rate, seconds

    def users_at(self, fraction: float, peak: int) -> tuple[int, float | None]:
        """Users at this point of the run (0..1), and a spawn rate override (None: --spawn-rate)."""
        raise NotImplementedError

    def tick(self) -> tuple[int, float] | None:
        peak, rate, seconds = self._options()
        elapsed = time.perf_counter() - float(self.start_time)
        if elapsed >= seconds:
            return None
        users, override = self.users_at(elapsed / seconds, peak)
        return users, override or rate


class RampShape(_ScaledShape):
    """Linear climb to --users over the first 80% of the run, then hold."""

    def users_at(self, fraction: float, peak: int) -> tuple[int, float | None]:
        return max(1, math.ceil(peak * min(1.0, fraction / 0.8))), None


class SoakShape(_ScaledShape):
    """Reach --users in the first 10% of the run and hold it: steady load for leaks and drift."""

    def users_at(self, fraction: float, peak: int) -> tuple[int, float | None]:
        return max(1, math.ceil(peak * min(1.0, fraction / 0.1))), None


class SpikeShape(_ScaledShape):
    """A fifth of --users, a burst to --users (spawned at once) between 40% and 60%, back down."""

    def users_at(self, fraction: float, peak: int) -> tuple[int, float | None]:
        if 0.4 <= fraction < 0.6:
            return peak, float(peak)
        return max(1, peak // 5), float(peak)


SHAPES: dict[str, type[LoadTestShape]] = {
    "ramp": RampShape,
    "soak": SoakShape,
    "spike": SpikeShape,
}


def selected_shape() -> type[LoadTestShape] | None:
    """The shape named by LOADTEST_SHAPE (ramp, soak, spike); None or "none": constant users."""
    name = os.environ.get("LOADTEST_SHAPE", "").strip().lower()
    if name in ("", "none", "constant"):
        return None
    if name not in SHAPES:
        raise ValueError(f"LOADTEST_SHAPE={name!r} is not one of {', '.join(SHAPES)} or none")
    return SHAPES[name]
