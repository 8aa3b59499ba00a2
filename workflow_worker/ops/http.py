"""The worker's HTTP endpoints, served by aiohttp inside the worker's own event loop."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from workflow_worker.errors import ConfigError

__all__ = ["Health", "create_app", "start_http"]

# The ticker (chores.TICK) runs every 10 s; a tick older than this means the loop is stuck.
STALE_TICK_SECONDS = 30.0


@dataclass(slots=True)
class Health:
    """What the endpoints read: callables, so they always see the live state."""

    last_tick: Callable[[], float]
    ready: Callable[[], Awaitable[tuple[bool, str]]]
    refresh: Callable[[], Awaitable[None]] | None = None
    details: Callable[[], dict[str, object]] | None = None


HEALTH = web.AppKey("health", Health)
REGISTRY = web.AppKey("registry", CollectorRegistry)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the event loop is responsive. Never touches Redis."""
    age = time.monotonic() - request.app[HEALTH].last_tick()
    if age > STALE_TICK_SECONDS:
        return web.json_response({"status": "stalled", "tick_age_seconds": age}, status=503)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: Redis answers and the worker takes jobs (with what was read of the server:
    version, eviction policy, persistence)."""
    health = request.app[HEALTH]
    ok, reason = await health.ready()
    body: dict[str, object] = {"status": "ready" if ok else "not ready", "reason": reason}
    if health.details is not None:
        body.update(health.details())
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; the fleet-wide queue gauges are refreshed for the scrape."""
    refresh = request.app[HEALTH].refresh
    if refresh is not None:
        await refresh()
    body = generate_latest(request.app[REGISTRY])
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def create_app(health: Health, registry: CollectorRegistry) -> web.Application:
    app = web.Application()
    app[HEALTH] = health
    app[REGISTRY] = registry
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def start_http(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve `app`; returns the runner (for cleanup) and the bound port (for port 0)."""
    # A scraper's keep-alive connection must not hold the exit for aiohttp's default 60 s.
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise _bind_error(host, port, exc) from exc
    bound = port
    for address in runner.addresses:  # the real port when `port` is 0
        bound = int(address[1])
    return runner, bound


def _bind_error(host: str, port: int, exc: OSError) -> ConfigError:
    """Name the setting to change: the port when it is taken or reserved, else the host."""
    if isinstance(exc, socket.gaierror):
        return ConfigError("WORKER_HTTP_HOST", host, reason=f"cannot resolve it ({exc})")
    if exc.errno == errno.EADDRINUSE:
        reason = f"another process already listens on {host}:{port}; pick a free port or stop it"
    elif exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(
            "WORKER_HTTP_HOST", host, reason=f"no network interface has this address ({exc})"
        )
    else:
        reason = f"cannot listen on {host}:{port}: {exc}"
    return ConfigError("WORKER_HTTP_PORT", str(port), reason=reason)
