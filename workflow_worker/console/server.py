"""The console's aiohttp application: HTML pages, the JSON API under /api, and their guards."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from workflow_worker.connection import connect
from workflow_worker.console import pages
from workflow_worker.console.actions import ACTIONS, Actions, Done
from workflow_worker.console.auth import COOKIE, CSRF_HEADER, Auth, Session
from workflow_worker.console.reader import Reader
from workflow_worker.errors import ConfigError
from workflow_worker.settings import Settings

__all__ = ["create_app", "serve"]

log = logging.getLogger("workflow_worker.console")

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


def _api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No framing, no caching of pages that hold job data, no referrer leaking ids elsewhere."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers["Content-Security-Policy"] = pages.CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who is asking (Bearer or basic credentials, a session, or anonymous when allowed), and
    for a change: same origin, a matching CSRF token, not read-only."""
    auth = request.app[AUTH]
    session = auth.sessions.get(request.cookies.get(COOKIE))
    via = _identify(request, auth, session)
    request[VIA] = via
    request[SESSION] = session
    if request.method not in ("GET", "HEAD") and not _same_origin(request):
        return _refuse(request, 403, "cross-origin request refused")
    if request.path in PUBLIC:
        return await handler(request)
    if via is None:
        return _unauthorized(request, auth)
    if request.method not in ("GET", "HEAD"):
        refusal = await _check_change(request, auth, via, session)
        if refusal is not None:
            return refusal
    fresh = None
    if session is None and via in ("basic", "anonymous") and not _api(request):
        # A browser that proved itself (or needs not) gets a session for its CSRF token.
        fresh = request[SESSION] = auth.sessions.new()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if fresh is not None:
            auth.set_cookie(exc, fresh)
        raise
    if fresh is not None:
        auth.set_cookie(response, fresh)
    return response


def _identify(request: web.Request, auth: Auth, session: Session | None) -> str | None:
    via = auth.from_header(request.headers.get("Authorization", ""))
    if via is None and session is not None:
        via = "session"
    if via is None and auth.anonymous:
        via = "anonymous"
    return via


async def _check_change(
    request: web.Request, auth: Auth, via: str, session: Session | None
) -> web.Response | None:
    """A refusal for a change that lacks its CSRF token or meets a read-only console."""
    if via != "bearer":
        given = request.headers.get(CSRF_HEADER, "")
        if not given and not _api(request):
            given = str((await request.post()).get("csrf", ""))
        if not auth.csrf_ok(session, given):
            return _refuse(request, 403, "missing or wrong CSRF token: reload the page")
    if auth.read_only and request.path != "/logout":
        return _refuse(request, 403, "the console is read-only (WORKER_CONSOLE_READ_ONLY=1)")
    return None


def _same_origin(request: web.Request) -> bool:
    """A browser names the page a request comes from; another site's page is refused."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _refuse(request: web.Request, status: int, text: str) -> web.Response:
    if _api(request):
        return web.json_response({"error": text}, status=status)
    return _html(request, pages.message(_page(request), "Refused", text), status=status)


def _unauthorized(request: web.Request, auth: Auth) -> web.Response:
    challenge = {"WWW-Authenticate": 'Basic realm="workflow-worker console", charset="UTF-8"'}
    if _api(request):
        return web.json_response(
            {"error": "credentials required"},
            status=401,
            headers=challenge if auth.basic else {"WWW-Authenticate": "Bearer"},
        )
    if auth.basic and not auth.token:
        text = pages.message(_page(request), "Sign in", "This console needs credentials.")
        return _html(request, text, status=401, headers=challenge)
    raise web.HTTPSeeOther("/login")


def _page(request: web.Request) -> pages.Page:
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


def _html(
    request: web.Request, text: str, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(text=text, content_type="text/html", status=status, headers=headers)


def _queue(request: web.Request) -> str | None:
    queue = request.query.get("queue") or None
    if queue is not None and queue not in request.app[SETTINGS].queues:
        raise web.HTTPNotFound(text=f"unknown queue {queue!r}")
    return queue


def _int(request: web.Request, name: str, default: int, most: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None
    return max(0, min(value, most))


def _filters(request: web.Request) -> dict[str, str]:
    return {
        k: request.query[k]
        for k in ("queue", "state", "workflow", "worker")
        if request.query.get(k)
    }


# --- HTML pages ---------------------------------------------------------------------------


async def overview(request: web.Request) -> web.Response:
    reader = request.app[READER]
    text = pages.overview(_page(request), await reader.queues(), await reader.workers())
    return _html(request, text)


async def jobs(request: web.Request) -> web.Response:
    reader = request.app[READER]
    wanted = request.query.get("id", "").strip()
    if wanted:
        job = await reader.job(wanted, _queue(request))
        if job is None:
            text = pages.message(_page(request), "Not found", f"No record of job {wanted}.")
            return _html(request, text, status=404)
        raise web.HTTPSeeOther(f"/job?{_query(id=wanted, queue=job['queue'])}")
    filters = _filters(request)
    _queue(request)
    rows, workflows = await reader.jobs(
        queue=filters.get("queue"),
        state=filters.get("state"),
        workflow=filters.get("workflow"),
        worker=filters.get("worker"),
        limit=_int(request, "limit", 200, MAX_LIMIT),
    )
    return _html(request, pages.jobs_list(_page(request), rows, filters, workflows))


async def job(request: web.Request) -> web.Response:
    job_id = request.query.get("id", "")
    found = await request.app[READER].job(job_id, _queue(request)) if job_id else None
    if found is None:
        text = pages.message(_page(request), "Not found", f"No record of job {job_id}.")
        return _html(request, text, status=404)
    return _html(request, pages.job_detail(_page(request), found))


async def dead(request: web.Request) -> web.Response:
    data = await request.app[READER].dead_letters(
        _queue(request), _int(request, "start", 0, 10**9), 50
    )
    return _html(request, pages.dead_list(_page(request), data))


async def confirm(request: web.Request) -> web.Response:
    page = _page(request)
    action = request.query.get("action", "")
    if action not in ACTIONS:
        raise web.HTTPNotFound(text="unknown action")
    if not page.can_act:
        return _refuse(request, 403, "actions are not available here")
    fields = {k: request.query[k] for k in ("id", "queue", "entry") if request.query.get(k)}
    fields.setdefault("queue", request.app[SETTINGS].queues[0])
    _queue(request)
    detail = ""
    if action == "requeue":
        entry = await request.app[READER].find_dead(fields["queue"], fields.get("entry", ""))
        if entry is None:
            text = pages.message(page, "Gone", "That dead letter is no longer there.")
            return _html(request, text, status=404)
        row = request.app[READER].dead_row(entry)
        detail = f"<p>Job {pages.esc(row['job_id'] or '(no id)')}: {pages.esc(row['reason'])}</p>"
    return _html(request, pages.confirm(page, action, fields, detail))


async def action(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {k: str(form[k]) for k in ("action", "id", "queue", "entry") if form.get(k)}
    name = fields.pop("action", "")
    done = await _perform(request, name, fields)
    text = pages.result(_page(request), name, fields, done.ok, done.message)
    return _html(request, text, status=200 if done.ok else 409)


async def _perform(request: web.Request, name: str, fields: dict[str, str]) -> Done:
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


async def login_form(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    return _html(request, pages.login(_page(request), token=bool(auth.token), basic=auth.basic))


async def login(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    form = await request.post()
    ok = False
    if form.get("token"):
        ok = auth.check_token(str(form["token"]))
    elif form.get("username") and auth.basic:
        ok = auth.check_basic(str(form["username"]), str(form.get("password", "")))
    if not ok:
        text = pages.login(
            _page(request), token=bool(auth.token), basic=auth.basic, error="Wrong credentials."
        )
        return _html(request, text, status=401)
    session = auth.sessions.new()
    response = web.HTTPSeeOther("/")
    auth.set_cookie(response, session)
    raise response


async def logout(request: web.Request) -> web.Response:
    session: Session | None = request.get(SESSION)
    if session is not None:
        request.app[AUTH].sessions.end(session.id)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _query(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


# --- JSON API -----------------------------------------------------------------------------


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
    filters = _filters(request)
    _queue(request)
    rows, _workflows = await request.app[READER].jobs(
        queue=filters.get("queue"),
        state=filters.get("state"),
        workflow=filters.get("workflow"),
        worker=filters.get("worker"),
        limit=_int(request, "limit", 200, MAX_LIMIT),
    )
    return web.json_response({"jobs": rows})


async def api_job(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    found = await request.app[READER].job(job_id, _queue(request))
    if found is None:
        return web.json_response({"error": f"no record of job {job_id}"}, status=404)
    return web.json_response(found)


async def api_dead(request: web.Request) -> web.Response:
    data = await request.app[READER].dead_letters(
        _queue(request), _int(request, "start", 0, 10**9), _int(request, "count", 50, MAX_LIMIT)
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
    done = await _perform(request, name, fields)
    return web.json_response(done.as_dict(), status=200 if done.ok else 409)


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
    app.router.add_get("/", overview)
    app.router.add_get("/jobs", jobs)
    app.router.add_get("/job", job)
    app.router.add_get("/dead", dead)
    app.router.add_get("/confirm", confirm)
    app.router.add_post("/action", action)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/session", api_session)
    app.router.add_get("/api/queues", api_queues)
    app.router.add_get("/api/workers", api_workers)
    app.router.add_get("/api/jobs", api_jobs)
    app.router.add_get("/api/jobs/{job_id}", api_job)
    app.router.add_get("/api/dead", api_dead)
    app.router.add_post("/api/actions/{action}", api_action)
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
