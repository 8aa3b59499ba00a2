"""`./dev load-test-start N | load-test-status [--once] | load-test-stop`.

TARGET=local (default): an embedded Redis (or REDIS_URL) and LOADTEST_WORKERS worker processes in
benchmark mode. TARGET=k8s: the Deployment DEPLOYMENT in NAMESPACE on KUBE_CONTEXT, via kubectl.
`status` and `stop` follow the target recorded by `start` (in .loadtest/state.json).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from redis.exceptions import RedisError

from loadtest.config import ConfigError, LoadTestConfig
from loadtest.k8s import K8sTarget, KubectlError
from loadtest.local import LocalTarget
from loadtest.state import load
from loadtest.view import watch
from workflow_worker.errors import ConfigError as WorkerConfigError

__all__ = ["main"]

Target = LocalTarget | K8sTarget


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest.ctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="turn on benchmark mode and push N synthetic jobs")
    start.add_argument("jobs", type=int, nargs="?", default=200)
    status = sub.add_parser(
        "status",
        help="queue depth, active jobs and pods: redrawn in place on a terminal, one frame when "
        "piped",
    )
    status.add_argument("--once", action="store_true", help="print one frame and exit")
    status.add_argument("--interval", type=float, default=1.0, help="seconds between frames")
    status.add_argument(
        "--until-done", action="store_true", help="exit once every pushed job has ended"
    )
    stop = sub.add_parser("stop", help="drain the load-test jobs and restore normal mode")
    stop.add_argument(
        "--timeout",
        type=float,
        help="seconds to wait for running load-test jobs (default: "
        "LOADTEST_DRAIN_TIMEOUT, else twice the longest benchmark sleep, at least 60)",
    )
    return parser


def _target(config: LoadTestConfig, out: TextIO) -> Target:
    """The recorded run's target wins over TARGET, so stop never acts on the wrong place."""
    state = load(config.state_file)
    kind = state.target if state is not None else config.target
    return K8sTarget(config, out) if kind == "k8s" else LocalTarget(config, out)


def _status(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    state = load(target.config.state_file)
    if state is None:
        print("no load test is running (start one with: ./dev load-test-start 200)", file=out)
        return 1
    # Redrawing only makes sense on a terminal: piped or captured (a script, CI) the command
    # prints one frame and returns, unless --until-done says when to stop.
    once = args.once or not (args.until_done or out.isatty())
    watch(
        lambda: target.snapshot(state),
        out,
        once=once,
        interval=args.interval,
        until_done=args.until_done,
    )
    return 0


def run(args: argparse.Namespace, config: LoadTestConfig, out: TextIO) -> int:
    target = _target(config, out)
    if args.command == "start":
        if args.jobs < 0:
            raise ConfigError("the number of jobs must not be negative")
        return target.start(args.jobs)
    if args.command == "status":
        return _status(target, args, out)
    timeout = config.drain_timeout if args.timeout is None else args.timeout
    return target.stop(timeout)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args, LoadTestConfig.from_env(), out)
    except (ConfigError, WorkerConfigError) as exc:
        print(f"load test: configuration error: {exc}", file=sys.stderr)
        return 2
    except (KubectlError, RuntimeError, OSError, RedisError) as exc:
        print(f"load test: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
