"""What the console's handlers share: the application's parts, who asks, and how parameters
and pages are read and answered."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from workflow_worker.console import pages
from workflow_worker.console.actions import Actions, Done
from workflow_worker.console.auth import Auth, Session
from workflow_worker.console.reader import Reader
from workflow_worker.settings import Settings

log = logging.getLogger("workflow_worker.console")

__all__ = [
    "ACTS",
    "AUTH",
    "MAX_LIMIT",
    "PUBLIC",
    "READER",
    "SESSION",
    "SETTINGS",
    "VIA",
    "Handler",
    "filters_of",
    "html",
    "int_param",
    "is_api",
    "page_of",
    "perform",
    "queue_of",
    "refuse",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AUTH = web.AppKey("auth", Auth)
READER = web.AppKey("reader", Reader)
ACTS = web.AppKey("actions", Actions)
SETTINGS = web.AppKey("settings", Settings)
VIA: web.RequestKey[str | None] = web.RequestKey("via")
SESSION: web.RequestKey[Session | None] = web.RequestKey("session")
# Reachable without credentials: the sign-in page and the probe.
PUBLIC = frozenset({"/login", "/healthz"})
MAX_LIMIT = 1000


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def page_of(request: web.Request) -> pages.Page:
    auth = request.app[AUTH]
    session: Session | None = request.get(SESSION)
    via = request.get(VIA)
    return pages.Page(
        csrf=session.csrf if session else None,
        can_act=not auth.read_only and session is not None,
        queues=request.app[SETTINGS].queues,
        signed_in=via == "session",
        read_only=auth.read_only,
    )


def html(
    request: web.Request, text: str, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(text=text, content_type="text/html", status=status, headers=headers)


def queue_of(request: web.Request) -> str | None:
    queue = request.query.get("queue") or None
    if queue is not None and queue not in request.app[SETTINGS].queues:
        raise web.HTTPNotFound(text=f"unknown queue {queue!r}")
    return queue


def int_param(request: web.Request, name: str, default: int, most: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None
    return max(0, min(value, most))


def filters_of(request: web.Request) -> dict[str, str]:
    return {
        k: request.query[k]
        for k in ("queue", "state", "workflow", "worker")
        if request.query.get(k)
    }


def refuse(request: web.Request, status: int, text: str) -> web.Response:
    if is_api(request):
        return web.json_response({"error": text}, status=status)
    return html(request, pages.message(page_of(request), "Refused", text), status=status)


async def perform(request: web.Request, name: str, fields: dict[str, str]) -> Done:
    acts = request.app[ACTS]
    queue = fields.get("queue") or None
    if queue is not None and queue not in request.app[SETTINGS].queues:
        raise web.HTTPNotFound(text=f"unknown queue {queue!r}")
    if name in ("cancel", "retry") and not fields.get("id"):
        raise web.HTTPBadRequest(text="id is required")
    if name == "cancel":
        done = await acts.cancel(queue, fields["id"])
    elif name == "retry":
        done = await acts.retry(queue, fields["id"])
    elif name == "requeue":
        done = await acts.requeue(queue, fields.get("entry", ""))
    elif name == "purge":
        done = await acts.purge(queue)
    else:
        raise web.HTTPNotFound(text="unknown action")
    # Who did what, without any credential: actions change jobs, so they are logged.
    log.info(
        "console action",
        extra={
            "action": name,
            "queue": queue,
            "job_id": fields.get("id"),
            "ok": done.ok,
            "via": request.get(VIA),
        },
    )
    return done
