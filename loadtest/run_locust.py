"""`just load-test-locust`: a local stack, locust headless against it for a bounded time, then
everything stopped. Exits with locust's exit code, which the SLO gates set.

Options this command does not know go to locust, e.g. `--slo-p95-e2e-ms 2000`. Output in --out:
`run_stats.csv`, `run_stats_history.csv`, `run_failures.csv`, `run_exceptions.csv`, `report.html`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from loadtest.config import ROOT, ConfigError, LoadTestConfig
from loadtest.local import LocalTarget
from loadtest.state import RunState

__all__ = ["main"]

HERE = Path(__file__).parent
SHAPE_NAMES = ("none", "ramp", "soak", "spike")
# Short benchmark sleeps by default: a 30-second run should see many jobs complete.
QUICK_MIN, QUICK_MAX = "0.1", "1"
STOP_GRACE = 120.0


def seconds(timespan: str) -> float:
    """`90`, `30s`, `5m`, `1h30m` -> seconds (locust's --run-time syntax)."""
    parts = re.findall(r"(\d+)\s*([hms]?)", timespan.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s", "", timespan.lower()):
        raise ConfigError(f"--run-time {timespan!r} is not like 30s, 5m or 1h30m")
    scale = {"h": 3600, "m": 60, "s": 1, "": 1}
    return float(sum(int(n) * scale[u] for n, u in parts))


def _parser(config: LoadTestConfig) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest.run_locust", description=__doc__)
    parser.add_argument("--run-time", default="30s", help="how long locust runs (default 30s)")
    parser.add_argument("--users", type=int, default=10, help="users, or the shape's peak")
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="users started per second")
    parser.add_argument(
        "--shape",
        choices=SHAPE_NAMES,
        default=os.environ.get("LOADTEST_SHAPE") or "none",
        help="load shape (default: LOADTEST_SHAPE, else constant users)",
    )
    parser.add_argument("--workers", type=int, default=config.workers, help="worker processes")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "artifacts" / "loadtest", help="CSV and HTML directory"
    )
    return parser


def _locust_argv(args: argparse.Namespace, extra: Sequence[str]) -> list[str]:
    out: Path = args.out
    return [
        sys.executable,
        "-m",
        "locust",
        "--config",
        str(HERE / "locust.conf"),
        "--locustfile",
        str(HERE / "locustfile.py"),
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        f"{args.spawn_rate:g}",
        "--run-time",
        args.run_time,
        "--csv",
        str(out / "run"),
        "--html",
        str(out / "report.html"),
        *extra,
    ]


def _locust_env(state: RunState, shape: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(REDIS_URL=state.redis_url, WORKER_QUEUE=state.queue, LOADTEST_SHAPE=shape)
    # The locustfile imports `loadtest.*`; locust itself only puts loadtest/ on sys.path.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def run(args: argparse.Namespace, extra: Sequence[str], config: LoadTestConfig) -> int:
    limit = seconds(args.run_time)
    args.out.mkdir(parents=True, exist_ok=True)
    target = LocalTarget(replace(config, workers=args.workers))
    if target.running() is not None:
        target.stop(timeout=5)  # left over from an interrupted run
    state = target.boot()
    print(f"local stack: {args.workers} workers on {state.redis_url}", flush=True)
    try:
        proc = subprocess.run(
            _locust_argv(args, extra),
            env=_locust_env(state, args.shape),
            cwd=ROOT,
            timeout=limit + STOP_GRACE,
            check=False,
        )
    finally:
        target.stop(timeout=min(config.drain_timeout, 30.0))
    print(f"locust exit code {proc.returncode}; CSV and report.html in {args.out}")
    return proc.returncode


def main(argv: Sequence[str] | None = None) -> int:
    environ = dict(os.environ)
    environ.setdefault("WORKER_BENCHMARK_MIN_SECONDS", QUICK_MIN)
    environ.setdefault("WORKER_BENCHMARK_MAX_SECONDS", QUICK_MAX)
    try:
        config = LoadTestConfig.from_env(environ)
        # Its own state directory, so a stack from `load-test-start` is never touched.
        config = replace(config, state_dir=config.state_dir / "locust")
        args, extra = _parser(config).parse_known_args(argv)
        return run(args, extra, config)
    except ConfigError as exc:
        print(f"load test: configuration error: {exc}", file=sys.stderr)
        return 2
    except subprocess.TimeoutExpired as exc:
        print(f"load test: locust did not end within {exc.timeout:g}s; killed", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
