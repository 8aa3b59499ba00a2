"""The console's aiohttp application and its process: routes, guards, and serving until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiohttp import web

from workflow_worker.connection import connect
from workflow_worker.console import api, views
from workflow_worker.console.actions import Actions
from workflow_worker.console.auth import Auth
from workflow_worker.console.middleware import guard, headers
from workflow_worker.console.reader import Reader
from workflow_worker.console.state import ACTS, AUTH, READER, SETTINGS
from workflow_worker.errors import ConfigError
from workflow_worker.settings import Settings

__all__ = ["create_app", "serve"]

log = logging.getLogger("workflow_worker.console")


def create_app(settings: Settings, redis: Any = None) -> web.Application:
    """The console for `settings.queues`; ConfigError when its auth settings do not allow it."""
    auth = Auth(settings)
    app = web.Application(middlewares=[headers, guard], client_max_size=64 * 1024)
    client = redis if redis is not None else connect(settings)
    reader = Reader(settings, client)
    app[AUTH] = auth
    app[READER] = reader
    app[ACTS] = Actions(reader)
    app[SETTINGS] = settings
    if redis is None:

        async def close(_app: web.Application) -> None:
            await client.aclose()

        app.on_cleanup.append(close)
    app.router.add_get("/", views.overview)
    app.router.add_get("/jobs", views.jobs)
    app.router.add_get("/job", views.job)
    app.router.add_get("/dead", views.dead)
    app.router.add_get("/confirm", views.confirm)
    app.router.add_post("/action", views.action)
    app.router.add_get("/login", views.login_form)
    app.router.add_post("/login", views.login)
    app.router.add_post("/logout", views.logout)
    app.router.add_get("/healthz", views.healthz)
    app.router.add_get("/api/session", api.api_session)
    app.router.add_get("/api/queues", api.api_queues)
    app.router.add_get("/api/workers", api.api_workers)
    app.router.add_get("/api/jobs", api.api_jobs)
    app.router.add_get("/api/jobs/{job_id}", api.api_job)
    app.router.add_get("/api/dead", api.api_dead)
    app.router.add_post("/api/actions/{action}", api.api_action)
    return app


async def serve(settings: Settings, started: asyncio.Event | None = None) -> int:
    """Run the console until SIGTERM or SIGINT."""
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=log if log.isEnabledFor(logging.DEBUG) else None)
    await runner.setup()
    site = web.TCPSite(runner, settings.console_host, settings.console_port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            "WORKER_CONSOLE_PORT", str(settings.console_port), reason=exc.strerror or str(exc)
        ) from exc
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    port = runner.addresses[0][1] if runner.addresses else settings.console_port
    log.info(
        "console listening",
        extra={
            "port": port,
            "queues": list(settings.queues),
            "read_only": settings.console_read_only,
            "anonymous": settings.console_anonymous,
        },
    )
    if started is not None:
        started.set()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
