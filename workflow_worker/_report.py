"""What the command line prints when a command fails: one line naming the setting or the cause,
and an exit code; the traceback only with `--debug`. Every line is listed, with its fix, in
docs/troubleshooting.md.

Exit codes: 0 done; 1 the answer is "no" (unknown job, nothing to requeue), a job over the size
limit, or an unexpected error; 2 a setting or flag cannot be used; 3 a duplicate was not
enqueued; 4 Redis cannot be reached or refused the credentials; 130 interrupted; 141 the reader
of the output went away (`| head`), as for a process killed by SIGPIPE.
"""

from __future__ import annotations

import os
import sys
import traceback

from redis.exceptions import AuthenticationError, AuthorizationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workflow_worker.errors import ConfigError, PayloadTooLarge
from workflow_worker.settings import redact_url

__all__ = [
    "EXIT_CONFIG",
    "EXIT_INTERRUPTED",
    "EXIT_PIPE",
    "EXIT_REDIS",
    "failure",
    "report",
    "silence_stdout",
]

PROG = "workflow-worker"
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_REDIS = 4
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141


def failure(exc: BaseException, redis_url: str, url_source: str) -> tuple[str, int]:
    """The line to print for `exc` and the exit code. `url_source` is what set the URL
    (`REDIS_URL` or `--redis-url`), so the line names the thing to change."""
    text = _one_line(str(exc))
    if isinstance(exc, ConfigError):
        if exc.variable.startswith("--"):
            return f"{PROG}: {text}", EXIT_CONFIG
        return f"{PROG}: configuration error: {text}", EXIT_CONFIG
    if isinstance(exc, PayloadTooLarge):
        return f"{PROG}: {text}", EXIT_ERROR
    url = redact_url(redis_url)
    where = f"--redis-url {url}" if url_source.startswith("--") else f"{url_source}={url}"
    if isinstance(exc, AuthenticationError | AuthorizationError):
        who = "REDIS_USERNAME, REDIS_PASSWORD or the URL's user and password"
        return f"{PROG}: Redis at {where} refused the credentials ({who}): {text}", EXIT_REDIS
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return f"{PROG}: cannot reach Redis at {where}: {_cause(exc)}", EXIT_REDIS
    if isinstance(exc, RedisError):
        return f"{PROG}: Redis at {where} answered with an error: {text}", EXIT_ERROR
    name = type(exc).__name__
    return (
        f"{PROG}: unexpected error: {name}: {text} (run with --debug for the traceback)",
        EXIT_ERROR,
    )


def _cause(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    # The asyncio client says "Connect call failed"; the system's own words are clearer.
    reason = _system_reason(exc)
    if reason and reason.lower() not in text.lower():
        text = f"{text.rstrip('.')}: {reason}"
    return _one_line(text)


def _one_line(text: str) -> str:
    # redis-py's messages span lines when the server's answer does; keep the promise of one.
    return " ".join(text.split())


def _system_reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and isinstance(seen.errno, int) and seen.errno > 0:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return ""


def report(exc: BaseException, redis_url: str, url_source: str, debug: bool) -> int:
    """Print `exc` as one line on stderr (after its traceback with `debug`); the exit code."""
    line, code = failure(exc, redis_url, url_source)
    if debug:
        traceback.print_exception(exc)
    print(line, file=sys.stderr)
    return code


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone: the interpreter flushes it at exit,
    and that flush would fail again with a second BrokenPipeError and its traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
