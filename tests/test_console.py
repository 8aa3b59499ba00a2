"""The job console's HTML pages and JSON API over real HTTP, against a real Redis and real
in-process workers: what it shows, the actions it takes, and who it lets in."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import (
    ROOT,
    WorkerFactory,
    make_settings,
    run_cli,
    wait_for,
    wait_until,
    worker_env,
)
from tests.console_helpers import BEARER, PASSWORD, TOKEN, USER, basic, running_console
from tests.servers import free_port
from workflow_worker.console import check_auth_settings
from workflow_worker.errors import ConfigError
from workflow_worker.producer.client import Client
from workflow_worker.producer.requests import JobSpec
from workflow_worker.workflows.context import JobContext

Console = TestClient[Any, Any]


async def boom(payload: dict[str, Any], ctx: JobContext) -> None:
    """Fails with a traceback that names this function."""
    raise ValueError(f"boom for {payload.get('customer')}")


async def hold(payload: dict[str, Any], ctx: JobContext) -> str:
    await asyncio.sleep(60)
    return "held"


async def echo(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    return payload


REGISTRY = {"boom": boom, "hold": hold, "echo": echo}


async def _csrf(console: Console, page: str = "/") -> str:
    """Open a page as a browser would (basic credentials) and read its CSRF token."""
    response = await console.get("/confirm?action=purge", headers=basic())
    text = await response.text()
    match = re.search(r'name="csrf" value="([^"]+)"', text)
    assert match, text
    return match.group(1)


def test_start_is_refused_without_credentials(redis_url: str) -> None:
    """Without a token, basic credentials or WORKER_CONSOLE_ANONYMOUS=1 the console does not
    start, and the error names WORKER_CONSOLE_TOKEN; half a basic pair names the other half."""
    with pytest.raises(ConfigError, match=r"WORKER_CONSOLE_TOKEN .*WORKER_CONSOLE_ANONYMOUS=1"):
        check_auth_settings(make_settings(redis_url))
    with pytest.raises(ConfigError, match="WORKER_CONSOLE_PASSWORD"):
        check_auth_settings(make_settings(redis_url, console_username="ops"))
    check_auth_settings(make_settings(redis_url, console_anonymous=True))
    done = run_cli(redis_url, "console", timeout=30)
    assert done.returncode == 2
    assert "WORKER_CONSOLE_TOKEN" in done.stderr


def test_a_short_token_is_refused_without_showing_it(redis_url: str) -> None:
    """A token under 16 characters stops the console; the message never repeats the value."""
    done = run_cli(redis_url, "console", timeout=30, WORKER_CONSOLE_TOKEN="tiny-secret")
    assert done.returncode == 2
    assert "WORKER_CONSOLE_TOKEN" in done.stderr
    assert "tiny-secret" not in done.stderr + done.stdout


async def test_credentials_are_required(redis_url: str) -> None:
    """No or wrong credentials get 401 from the API and the sign-in page for HTML; the token
    (Bearer) and basic credentials are accepted."""
    async with running_console(redis_url) as console:
        assert (await console.get("/api/queues")).status == 401
        wrong = {"Authorization": "Bearer not-the-token-at-all"}
        assert (await console.get("/api/queues", headers=wrong)).status == 401
        assert (await console.get("/api/queues", headers=basic(USER, "nope"))).status == 401
        page = await console.get("/", allow_redirects=False)
        assert (page.status, page.headers["Location"]) == (303, "/login")
        assert (await console.get("/api/queues", headers=BEARER)).status == 200
        assert (await console.get("/api/queues", headers=basic())).status == 200


async def test_basic_only_console_asks_the_browser_for_credentials(redis_url: str) -> None:
    """With only basic credentials configured, a page without them answers 401 with a Basic
    challenge, so the browser prompts."""
    async with running_console(redis_url, console_token=None) as console:
        page = await console.get("/")
        assert page.status == 401
        assert page.headers["WWW-Authenticate"].startswith("Basic ")


async def test_login_gives_a_strict_http_only_session(redis_url: str) -> None:
    """Signing in with the token sets an HttpOnly SameSite=Strict session cookie that opens the
    pages; a wrong token is refused; signing out ends the session."""
    async with running_console(redis_url) as console:
        bad = await console.post("/login", data={"token": "wrong"})
        assert bad.status == 401
        good = await console.post("/login", data={"token": TOKEN}, allow_redirects=False)
        assert good.status == 303
        cookie = good.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        overview = await console.get("/")
        assert overview.status == 200
        text = await overview.text()
        assert "Queues" in text
        csrf = re.search(r'name="csrf" value="([^"]+)"', text)
        assert csrf
        out = await console.post("/logout", data={"csrf": csrf.group(1)}, allow_redirects=False)
        assert out.status == 303
        again = await console.get("/", allow_redirects=False)
        assert again.status == 303


async def test_anonymous_access_only_when_enabled(redis_url: str) -> None:
    """WORKER_CONSOLE_ANONYMOUS=1 opens pages and API without credentials."""
    async with running_console(
        redis_url,
        console_token=None,
        console_username=None,
        console_password=None,
        console_anonymous=True,
    ) as console:
        assert (await console.get("/api/queues")).status == 200
        assert (await console.get("/")).status == 200


async def test_job_page_shows_error_traceback_and_redacted_payload(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A job that failed for good: the page and the API show its error, its traceback, its dead
    letter's reason and its message, with redacted fields masked and their values absent."""
    await start_worker(registry=REGISTRY)
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue(
            "boom", {"customer": "acme", "password": "hunter2-secret"}, max_attempts=1
        )
        await wait_for(lambda: _state(client, job_id, "failure"))
    async with running_console(redis_url) as console:
        found = await (await console.get(f"/api/jobs/{job_id}", headers=BEARER)).json()
        assert found["record"]["state"] == "failure"
        assert "boom for acme" in found["record"]["error"]
        assert "in boom" in found["record"]["traceback"]
        assert found["message_place"] == "dead letter"
        assert found["dead_letters"][0]["kind"] == "failed"
        assert '"password": "[redacted]"' in found["message"]["text"]
        page = await console.get(f"/job?id={job_id}", headers=basic())
        html = await page.text()
        assert "Traceback" in html
        assert "boom for acme" in html
        assert "[redacted]" in html
        assert "hunter2-secret" not in html
        assert "hunter2-secret" not in str(found)
        assert "attempt 1 started on" in html
        assert "ended: failure" in html
        assert "dead-lettered (failed)" in html


async def test_progress_is_shown_when_the_record_has_it(redis_url: str) -> None:
    """A status record that carries `progress` shows it on the job's page."""
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("echo", {})
        await client.redis.hset(client.keys.job(job_id), "progress", "40% (page 4 of 10)")
    async with running_console(redis_url) as console:
        page = await (await console.get(f"/job?id={job_id}", headers=basic())).text()
    assert "<dt>progress</dt><dd>40% (page 4 of 10)</dd>" in page


async def test_result_is_redacted(start_worker: WorkerFactory, redis_url: str) -> None:
    """A result holding a redacted field name is shown masked on the page and in the API."""
    await start_worker(registry=REGISTRY)
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("echo", {"token": "tok-value-xyz", "n": 3})
        await client.result(job_id, timeout=10)
    async with running_console(redis_url) as console:
        found = await (await console.get(f"/api/jobs/{job_id}", headers=BEARER)).json()
        page = await (await console.get(f"/job?id={job_id}", headers=basic())).text()
    assert found["message_place"] == "not kept after the job ended"
    assert '"token": "[redacted]"' in found["record"]["result"]
    assert '"n": 3' in found["record"]["result"]
    assert "tok-value-xyz" not in str(found) + page


async def test_payload_is_capped(redis_url: str) -> None:
    """A message longer than WORKER_CONSOLE_PAYLOAD_BYTES is shown cut, with its full size."""
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("echo", {"blob": "x" * 5000})
    async with running_console(redis_url, console_payload_bytes=1024) as console:
        found = await (await console.get(f"/api/jobs/{job_id}", headers=BEARER)).json()
    assert found["message_place"] == "waiting"
    assert found["message"]["truncated"] is True
    assert found["message"]["bytes"] > 5000
    assert len(found["message"]["text"].encode()) <= 1024


async def test_search_by_id_opens_the_job_and_unknown_ids_are_not_found(redis_url: str) -> None:
    """The search box's id leads to the job's page; an unknown id answers 404."""
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("echo", {"n": 1})
    async with running_console(redis_url) as console:
        found = await console.get(f"/jobs?id={job_id}", headers=basic(), allow_redirects=False)
        assert found.status == 303
        assert f"id={job_id}" in found.headers["Location"]
        missing = await console.get("/jobs?id=no-such-job", headers=basic())
        assert missing.status == 404
        assert (await console.get("/api/jobs/no-such-job", headers=BEARER)).status == 404


async def test_jobs_list_filters_by_state_and_workflow(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """The recent jobs can be filtered by state and by workflow, newest change first."""
    await start_worker(registry=REGISTRY)
    async with Client(make_settings(redis_url)) as client:
        ok = await client.enqueue("echo", {"n": 1})
        bad = await client.enqueue("boom", {}, max_attempts=1)
        await client.result(ok, timeout=10)
        await wait_for(lambda: _state(client, bad, "failure"))
    async with running_console(redis_url) as console:
        every = (await (await console.get("/api/jobs", headers=BEARER)).json())["jobs"]
        assert {j["id"] for j in every} == {ok, bad}
        failed = await console.get("/api/jobs?state=failure", headers=BEARER)
        assert [j["id"] for j in (await failed.json())["jobs"]] == [bad]
        echoed = await console.get("/api/jobs?workflow=echo", headers=BEARER)
        assert [j["id"] for j in (await echoed.json())["jobs"]] == [ok]
        page = await (await console.get("/jobs?state=success", headers=basic())).text()
        assert ok in page
        assert bad not in page


async def test_a_job_whose_record_expired_is_listed_as_gone(redis_url: str) -> None:
    """An index entry whose status record has expired is listed with the state `gone`."""
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("echo", {})
        await client.redis.delete(client.keys.job(job_id))
    async with running_console(redis_url) as console:
        jobs = (await (await console.get("/api/jobs", headers=BEARER)).json())["jobs"]
    assert [(j["id"], j["state"]) for j in jobs] == [(job_id, "gone")]


def test_the_console_command_serves_until_sigterm(redis_url: str, tmp_path: Path) -> None:
    """`workflow-worker console` listens on WORKER_CONSOLE_PORT, answers /healthz without
    credentials and the API with them, and exits 0 on SIGTERM."""
    port = free_port()
    env = worker_env(
        redis_url,
        WORKER_CONSOLE_TOKEN=TOKEN,
        WORKER_CONSOLE_PORT=str(port),
        WORKER_LOG_LEVEL="INFO",
    )
    log = (tmp_path / "console.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflow_worker", "console"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        health = wait_until(lambda: _get(f"http://127.0.0.1:{port}/healthz", {}), timeout=20)
        assert health == 200
        assert _get(f"http://127.0.0.1:{port}/api/queues", {}) == 401
        assert _get(f"http://127.0.0.1:{port}/api/queues", BEARER) == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "console.log").read_text()
    assert "console listening" in text
    assert TOKEN not in text


def _get(url: str, headers: dict[str, str]) -> int | None:
    """The status of a GET, or None while nothing listens."""
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - a local test URL
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


async def test_overview_shows_queues_and_live_workers(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """Queue sizes, jobs finished in the last minute and each live worker (host, version,
    capacity, running jobs) are on the overview and in the API."""
    await start_worker(registry=REGISTRY, concurrency=7)
    async with Client(make_settings(redis_url)) as client:
        await client.result(await client.enqueue("echo", {}), timeout=10)
        await client.enqueue("hold", {})
        await wait_for(lambda: _running(client))
    async with running_console(redis_url) as console:
        queues = (await (await console.get("/api/queues", headers=BEARER)).json())["queues"]
        assert queues[0]["queue"] == "workflow:queue"
        assert queues[0]["inflight"] == 1
        assert queues[0]["finished_last_minute"] == 1
        workers = await wait_for(lambda: _workers_with_active(console))
        assert workers[0]["concurrency"] == 7
        assert workers[0]["claims"] == 1
        assert workers[0]["version"]
        assert workers[0]["lease_left_seconds"] > 0
        page = await (await console.get("/", headers=basic())).text()
        assert workers[0]["id"] in page
        assert "1 / 7" in page


async def test_cancel_a_running_job(start_worker: WorkerFactory, redis_url: str) -> None:
    """The cancel action stops a running job: its record ends as cancelled."""
    await start_worker(registry=REGISTRY)
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("hold", {})
        await wait_for(lambda: _state(client, job_id, "running"))
        async with running_console(redis_url) as console:
            done = await console.post("/api/actions/cancel", json={"id": job_id}, headers=BEARER)
            assert done.status == 200
            assert "told to stop" in (await done.json())["message"]
        await wait_for(lambda: _state(client, job_id, "cancelled"))


async def test_retry_a_failed_job_and_requeue_and_purge_dead_letters(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """Retry puts a failed job back with fresh attempts from its dead letter; requeue takes a
    dead letter by its digest; purge empties the list."""
    async with Client(make_settings(redis_url)) as client:
        first = await client.enqueue("boom", {}, max_attempts=1)
        second = await client.enqueue("boom", {}, max_attempts=1)
        third = await client.enqueue("boom", {}, max_attempts=1)
        worker = await start_worker(registry=REGISTRY)
        await wait_for(lambda: _all_failed(client, [first, second, third]))
        await worker.stop()
        async with running_console(redis_url) as console:
            retried = await console.post("/api/actions/retry", json={"id": first}, headers=BEARER)
            assert retried.status == 200
            assert (await client.status(first) or {})["state"] == "queued"
            dead = await (await console.get("/api/dead", headers=BEARER)).json()
            assert dead["total"] == 2
            entry = next(e for e in dead["entries"] if e["job_id"] == second)
            moved = await console.post(
                "/api/actions/requeue", json={"entry": entry["digest"]}, headers=BEARER
            )
            assert moved.status == 200
            assert (await client.status(second) or {})["state"] == "queued"
            again = await console.post(
                "/api/actions/requeue", json={"entry": entry["digest"]}, headers=BEARER
            )
            assert again.status == 409
            purged = await console.post("/api/actions/purge", json={}, headers=BEARER)
            assert (await purged.json())["count"] == 1
            assert (await client.stats()).dead == 0


async def test_actions_need_the_session_csrf_token(redis_url: str) -> None:
    """A browser's action without its session's CSRF token, or from another origin, is refused
    and changes nothing; with the token from the confirmation page it is done."""
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("echo", {}, delay=60)
        async with running_console(redis_url) as console:
            form = {"action": "cancel", "id": job_id, "queue": "workflow:queue"}
            refused = await console.post("/action", data=form, headers=basic())
            assert refused.status == 403
            csrf = await _csrf(console)
            wrong = await console.post("/action", data={**form, "csrf": "x" * 43}, headers=basic())
            assert wrong.status == 403
            other = await console.post(
                "/action",
                data={**form, "csrf": csrf},
                headers={**basic(), "Origin": "https://evil.example"},
            )
            assert other.status == 403
            assert (await client.status(job_id) or {})["state"] == "delayed"
            done = await console.post("/action", data={**form, "csrf": csrf}, headers=basic())
            assert done.status == 200
            assert "was cancelled" in await done.text()
        assert (await client.status(job_id) or {})["state"] == "cancelled"


async def test_read_only_console_shows_no_actions_and_refuses_them(redis_url: str) -> None:
    """With WORKER_CONSOLE_READ_ONLY=1 pages carry no action buttons and every action is
    refused, even with the token."""
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("echo", {}, delay=60)
        async with running_console(redis_url, console_read_only=True) as console:
            page = await (await console.get(f"/job?id={job_id}", headers=basic())).text()
            assert "Cancel job" not in page
            assert "/confirm" not in page
            assert "read-only" in page
            refused = await console.post("/api/actions/cancel", json={"id": job_id}, headers=BEARER)
            assert refused.status == 403
            confirm = await console.get(f"/confirm?action=cancel&id={job_id}", headers=basic())
            assert confirm.status == 403
        assert (await client.status(job_id) or {})["state"] == "delayed"


async def test_no_credentials_in_pages_or_logs(
    start_worker: WorkerFactory, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the token nor the password appears in any page, API answer or log line, and
    pages forbid scripts, framing and caching."""
    caplog.set_level(logging.DEBUG)
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("echo", {}, delay=60)
    async with running_console(redis_url) as console:
        bodies = []
        for path in ("/", "/jobs", f"/job?id={job_id}", "/dead", "/login", "/api/session"):
            response = await console.get(path, headers=basic())
            bodies.append(await response.text())
            assert "script-src" not in response.headers["Content-Security-Policy"]
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["Cache-Control"] == "no-store"
        await console.post("/api/actions/cancel", json={"id": job_id}, headers=BEARER)
    seen = "".join(bodies) + caplog.text
    assert TOKEN not in seen
    assert PASSWORD not in seen
    assert "console action" in caplog.text


async def _state(client: Client, job_id: str, state: str) -> bool:
    record = await client.status(job_id)
    return record is not None and record["state"] == state


async def _all_failed(client: Client, ids: list[str]) -> bool:
    return all([await _state(client, job_id, "failure") for job_id in ids])


async def _running(client: Client) -> bool:
    return (await client.stats()).inflight == 1


async def _workers_with_active(console: Console) -> list[dict[str, Any]] | None:
    """The worker list once the heartbeat has reported the running job."""
    workers: list[dict[str, Any]] = (
        await (await console.get("/api/workers", headers=BEARER)).json()
    )["workers"]
    return workers if workers and workers[0].get("active") == 1 else None


async def fan_out(payload: dict[str, Any], ctx: JobContext) -> list[str]:
    """Creates two child jobs."""
    return [await ctx.enqueue("echo", {"n": n}) for n in range(2)]


async def test_job_page_links_parent_children_and_group(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A parent's page links its children, a child's page its parent, and a group's callback
    page counts its members while a member's page links the group."""
    await start_worker(registry={**REGISTRY, "fan_out": fan_out})
    async with Client(make_settings(redis_url)) as client:
        parent = await client.enqueue("fan_out", {})
        children = await client.result(parent, timeout=10)
        gid = await client.group(
            [JobSpec("echo", {"m": m}) for m in range(3)], then=JobSpec("echo")
        )
        await client.result(gid, timeout=10)
    async with running_console(redis_url) as console:
        parent_page = await (await console.get(f"/job?id={parent}", headers=basic())).text()
        child_page = await (await console.get(f"/job?id={children[0]}", headers=basic())).text()
        group_page = await (await console.get(f"/job?id={gid}", headers=basic())).text()
        member_page = await (await console.get(f"/job?id={gid}.0", headers=basic())).text()
    assert "<dt>children (2)</dt>" in parent_page
    assert all(f">{child}</a>" in parent_page for child in children)
    assert f'<dt>parent</dt><dd><a href="/job?id={parent}' in child_page
    assert "<dt>group</dt><dd>3 of 3 ended, 0 failed</dd>" in group_page
    assert f">{gid}</a>" in member_page.split("<dt>member of group</dt>")[1]
