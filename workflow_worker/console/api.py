"""The console's JSON API under /api: everything the pages show and do, same credentials."""

from __future__ import annotations

from aiohttp import web

from workflow_worker.console.auth import Session
from workflow_worker.console.state import (
    AUTH,
    MAX_LIMIT,
    READER,
    SESSION,
    SETTINGS,
    VIA,
    filters_of,
    int_param,
    perform,
    queue_of,
)

__all__ = [
    "api_action",
    "api_dead",
    "api_job",
    "api_jobs",
    "api_queues",
    "api_session",
    "api_workers",
]


async def api_session(request: web.Request) -> web.Response:
    """Who the API sees, and a CSRF token for callers that use basic auth or the cookie."""
    auth = request.app[AUTH]
    session: Session | None = request.get(SESSION)
    fresh = None
    if session is None and request[VIA] != "bearer":
        session = fresh = auth.sessions.new()
    response = web.json_response(
        {
            "via": request[VIA],
            "read_only": auth.read_only,
            "queues": list(request.app[SETTINGS].queues),
            "csrf": session.csrf if session else None,
        }
    )
    if fresh is not None:
        auth.set_cookie(response, fresh)
    return response


async def api_queues(request: web.Request) -> web.Response:
    return web.json_response({"queues": await request.app[READER].queues()})


async def api_workers(request: web.Request) -> web.Response:
    return web.json_response({"workers": await request.app[READER].workers()})


async def api_jobs(request: web.Request) -> web.Response:
    filters = filters_of(request)
    queue_of(request)
    rows, _workflows = await request.app[READER].jobs(
        queue=filters.get("queue"),
        state=filters.get("state"),
        workflow=filters.get("workflow"),
        worker=filters.get("worker"),
        limit=int_param(request, "limit", 200, MAX_LIMIT),
    )
    return web.json_response({"jobs": rows})


async def api_job(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    found = await request.app[READER].job(job_id, queue_of(request))
    if found is None:
        return web.json_response({"error": f"no record of job {job_id}"}, status=404)
    return web.json_response(found)


async def api_dead(request: web.Request) -> web.Response:
    data = await request.app[READER].dead_letters(
        queue_of(request),
        int_param(request, "start", 0, 10**9),
        int_param(request, "count", 50, MAX_LIMIT),
    )
    return web.json_response(data)


async def api_action(request: web.Request) -> web.Response:
    name = request.match_info["action"]
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        return web.json_response({"error": "the body must be a JSON object"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "the body must be a JSON object"}, status=400)
    fields = {k: str(body[k]) for k in ("id", "queue", "entry") if body.get(k)}
    done = await perform(request, name, fields)
    return web.json_response(done.as_dict(), status=200 if done.ok else 409)
