"""Command-line flags, checked as strictly as the environment: a flag that overrides a variable
goes through that variable's parser (`--concurrency 0` is refused like `WORKER_CONCURRENCY=0`),
and errors name the flag."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from workflow_worker.errors import ConfigError
from workflow_worker.producer.requests import JobSpec
from workflow_worker.settings import Settings, parse_flag

__all__ = ["count", "job_spec", "settings_from"]

MAX_COUNT = 10_000_000


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command's flags applied."""
    flags = {"redis_url": ("--redis-url", args.redis_url), "queue": ("--queue", args.queue)}
    if args.command == "run":
        flags.update(
            concurrency=("--concurrency", args.concurrency),
            http_port=("--http-port", args.http_port),
        )
    if args.command == "console":
        flags["console_port"] = ("--port", args.port)
    overrides = {
        name: parse_flag(name, flag, raw) for name, (flag, raw) in flags.items() if raw is not None
    }
    if "queue" in overrides:
        overrides["queues"] = (overrides["queue"],)
    return Settings.from_env(**overrides)


def count(flag: str, raw: str, most: int = MAX_COUNT) -> int:
    """A positive integer flag."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise ConfigError(flag, raw, f"an integer from 1 to {most}")
    return value


def _seconds(flag: str, raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(flag, raw, "a number of seconds, 0 or more")
    return value


def _payload(raw: str) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise ConfigError("--payload", raw, f"a JSON object ({exc})") from None
    if not isinstance(payload, dict):
        raise ConfigError("--payload", raw, "a JSON object")
    return payload


def job_spec(args: argparse.Namespace) -> tuple[JobSpec, int]:
    """The job `enqueue` pushes and how many copies of it."""
    copies = count("--count", args.count)
    if args.id and copies != 1:
        raise ConfigError("--count", args.count, "1 with --id (an id names one job)")
    attempts, timeout = args.max_attempts, args.timeout
    spec = JobSpec(
        args.workflow,
        _payload(args.payload),
        id=args.id,
        max_attempts=None
        if attempts is None
        else parse_flag("max_attempts", "--max-attempts", attempts),
        timeout=None if timeout is None else parse_flag("job_timeout", "--timeout", timeout),
        delay=_seconds("--delay", args.delay),
        unique_key=args.unique_key,
        expires=_expires(args.expires),
    )
    return spec, copies


def _expires(raw: str | None) -> float | None:
    value = _seconds("--expires", raw)
    if value == 0:
        raise ConfigError("--expires", raw, "a number of seconds above 0")
    return value
