"""The console's HTML pages and the form actions behind them."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from workflow_worker.console import pages
from workflow_worker.console.actions import ACTIONS
from workflow_worker.console.auth import COOKIE, Session
from workflow_worker.console.state import (
    AUTH,
    MAX_LIMIT,
    READER,
    SESSION,
    SETTINGS,
    filters_of,
    html,
    int_param,
    page_of,
    perform,
    queue_of,
    refuse,
)

__all__ = [
    "action",
    "confirm",
    "dead",
    "healthz",
    "job",
    "jobs",
    "login",
    "login_form",
    "logout",
    "overview",
]


async def overview(request: web.Request) -> web.Response:
    reader = request.app[READER]
    text = pages.overview(page_of(request), await reader.queues(), await reader.workers())
    return html(request, text)


async def jobs(request: web.Request) -> web.Response:
    reader = request.app[READER]
    wanted = request.query.get("id", "").strip()
    if wanted:
        job = await reader.job(wanted, queue_of(request))
        if job is None:
            text = pages.message(page_of(request), "Not found", f"No record of job {wanted}.")
            return html(request, text, status=404)
        raise web.HTTPSeeOther(f"/job?{urlencode({'id': wanted, 'queue': job['queue']})}")
    filters = filters_of(request)
    queue_of(request)
    rows, workflows = await reader.jobs(
        queue=filters.get("queue"),
        state=filters.get("state"),
        workflow=filters.get("workflow"),
        worker=filters.get("worker"),
        limit=int_param(request, "limit", 200, MAX_LIMIT),
    )
    return html(request, pages.jobs_list(page_of(request), rows, filters, workflows))


async def job(request: web.Request) -> web.Response:
    job_id = request.query.get("id", "")
    found = await request.app[READER].job(job_id, queue_of(request)) if job_id else None
    if found is None:
        text = pages.message(page_of(request), "Not found", f"No record of job {job_id}.")
        return html(request, text, status=404)
    return html(request, pages.job_detail(page_of(request), found))


async def dead(request: web.Request) -> web.Response:
    data = await request.app[READER].dead_letters(
        queue_of(request), int_param(request, "start", 0, 10**9), 50
    )
    return html(request, pages.dead_list(page_of(request), data))


async def confirm(request: web.Request) -> web.Response:
    page = page_of(request)
    action = request.query.get("action", "")
    if action not in ACTIONS:
        raise web.HTTPNotFound(text="unknown action")
    if not page.can_act:
        return refuse(request, 403, "actions are not available here")
    fields = {k: request.query[k] for k in ("id", "queue", "entry") if request.query.get(k)}
    fields.setdefault("queue", request.app[SETTINGS].queues[0])
    queue_of(request)
    detail = ""
    if action == "requeue":
        entry = await request.app[READER].find_dead(fields["queue"], fields.get("entry", ""))
        if entry is None:
            text = pages.message(page, "Gone", "That dead letter is no longer there.")
            return html(request, text, status=404)
        row = request.app[READER].dead_row(entry)
        detail = f"<p>Job {pages.esc(row['job_id'] or '(no id)')}: {pages.esc(row['reason'])}</p>"
    return html(request, pages.confirm(page, action, fields, detail))


async def action(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {k: str(form[k]) for k in ("action", "id", "queue", "entry") if form.get(k)}
    name = fields.pop("action", "")
    done = await perform(request, name, fields)
    text = pages.result(page_of(request), name, fields, done.ok, done.message)
    return html(request, text, status=200 if done.ok else 409)


async def login_form(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    return html(request, pages.login(page_of(request), token=bool(auth.token), basic=auth.basic))


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
            page_of(request), token=bool(auth.token), basic=auth.basic, error="Wrong credentials."
        )
        return html(request, text, status=401)
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
