"""The console's guards, run before every handler: security headers on every answer, and who
is asking (credentials, session, anonymous) and whether a change may go ahead."""

from __future__ import annotations

from aiohttp import web

from workflow_worker.console import pages
from workflow_worker.console.auth import COOKIE, CSRF_HEADER, Auth, Session
from workflow_worker.console.state import (
    AUTH,
    PUBLIC,
    SESSION,
    VIA,
    Handler,
    html,
    is_api,
    page_of,
    refuse,
)

__all__ = ["guard", "headers"]


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
        return refuse(request, 403, "cross-origin request refused")
    if request.path in PUBLIC:
        return await handler(request)
    if via is None:
        return _unauthorized(request, auth)
    if request.method not in ("GET", "HEAD"):
        refusal = await _check_change(request, auth, via, session)
        if refusal is not None:
            return refusal
    fresh = None
    if session is None and via in ("basic", "anonymous") and not is_api(request):
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
        if not given and not is_api(request):
            given = str((await request.post()).get("csrf", ""))
        if not auth.csrf_ok(session, given):
            return refuse(request, 403, "missing or wrong CSRF token: reload the page")
    if auth.read_only and request.path != "/logout":
        return refuse(request, 403, "the console is read-only (WORKER_CONSOLE_READ_ONLY=1)")
    return None


def _same_origin(request: web.Request) -> bool:
    """A browser names the page a request comes from; another site's page is refused."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _unauthorized(request: web.Request, auth: Auth) -> web.Response:
    challenge = {"WWW-Authenticate": 'Basic realm="workflow-worker console", charset="UTF-8"'}
    if is_api(request):
        return web.json_response(
            {"error": "credentials required"},
            status=401,
            headers=challenge if auth.basic else {"WWW-Authenticate": "Bearer"},
        )
    if auth.basic and not auth.token:
        text = pages.message(page_of(request), "Sign in", "This console needs credentials.")
        return html(request, text, status=401, headers=challenge)
    raise web.HTTPSeeOther("/login")
