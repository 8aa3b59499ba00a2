"""The job console in a real browser: headless Chromium from Debian's package, driven by
Playwright (the system browser through `executable_path`; nothing is downloaded), against worker
processes and a real Redis.

A missing browser is a failure, never a skip (scripts/install-tools.sh installs it): a skip would
let CI pass without the console ever being opened in a browser. Deselect on purpose with
`-m "not browser"`. `CONSOLE_SCREENSHOTS=docs/console` also writes the screenshots the docs show.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from playwright.async_api import Error as PlaywrightError

from tests.conftest import WorkerProcess, make_settings, wait_for
from tests.console_helpers import PASSWORD, TOKEN, USER, running_console
from workflow_worker.producer.client import Client

pytestmark = [pytest.mark.browser]

CHROMIUM = os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS", "")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium; the test fails, naming the fix, when it is not installed."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}: run scripts/install-tools.sh as root "
            "(just tools; Debian package chromium), or deselect with -m 'not browser'",
            pytrace=False,
        )
    async with async_playwright() as playwright:
        # No sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


async def _shot(page: Page, name: str, tmp_path: Path) -> None:
    """A screenshot of the page, kept with the test's files (and in the docs when asked;
    Playwright makes the folder)."""
    await page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    if SHOTS:
        # The docs show where the package is installed in the image, not this checkout.
        await page.evaluate(
            """root => document.querySelectorAll('pre').forEach(
                pre => { pre.textContent = pre.textContent.split(root).join('/app/'); })""",
            str(REPO) + "/",
        )
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def _sign_in(page: Page, base: str) -> None:
    await page.goto(base + "/")
    await expect(page).to_have_url(base + "/login")
    await page.get_by_label("Token").fill(TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()


async def _state(client: Client, job_id: str, state: str) -> bool:
    record = await client.status(job_id)
    return record is not None and record["state"] == state


async def test_find_a_job_by_id_and_read_its_traceback(
    browser: Browser, redis_url: str, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """An operator signs in with the token, types a failed job's id into the search box, and
    reads its error and traceback on its page; the overview lists the live worker."""
    spawn_worker()
    async with Client(make_settings(redis_url)) as client:
        ok = await client.enqueue("echo", {"order": 1})
        job_id = await client.enqueue(
            "fail", {"message": "card declined", "api_key": "sk-live-123"}, max_attempts=1
        )
        await client.result(ok, timeout=20)
        await wait_for(lambda: _state(client, job_id, "failure"), timeout=20)
    async with running_console(redis_url) as console:
        base = str(console.make_url("")).rstrip("/")
        page = await browser.new_page()
        await _sign_in(page, base)
        await expect(page.get_by_role("cell", name="workflow:queue").first).to_be_visible()
        await _shot(page, "overview", tmp_path)
        await page.get_by_role("link", name="Jobs").click()
        await expect(page.get_by_role("link", name=job_id)).to_be_visible()
        await _shot(page, "jobs", tmp_path)
        await page.get_by_label("job id").fill(job_id)
        await page.get_by_role("button", name="Find job").click()
        await expect(page.get_by_role("heading", name=f"Job {job_id}")).to_be_visible()
        await expect(page.locator("#error")).to_contain_text("card declined")
        await expect(page.locator("#traceback")).to_contain_text("WorkflowError")
        await expect(page.locator("#message")).to_contain_text("[redacted]")
        assert "sk-live-123" not in await page.content()
        await _shot(page, "job", tmp_path)


async def test_cancel_a_running_job(
    browser: Browser, redis_url: str, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """On a running job's page, Cancel asks for confirmation; once confirmed the worker stops
    the job and its record says cancelled."""
    spawn_worker()
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("sleep", {"seconds": 120})
        await wait_for(lambda: _state(client, job_id, "running"), timeout=20)
        async with running_console(redis_url) as console:
            base = str(console.make_url("")).rstrip("/")
            page = await browser.new_page()
            await _sign_in(page, base)
            await page.goto(f"{base}/job?id={job_id}")
            await page.get_by_role("button", name="Cancel job").click()
            await expect(page.get_by_text(f"Cancel job {job_id}")).to_be_visible()
            await _shot(page, "confirm", tmp_path)
            await page.get_by_role("button", name="Yes, cancel").click()
            await expect(page.get_by_role("status")).to_contain_text("told to stop")
        await wait_for(lambda: _state(client, job_id, "cancelled"), timeout=20)


async def test_requeue_a_dead_letter(
    browser: Browser, redis_url: str, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """The dead-letter page shows the reason; Requeue, once confirmed, puts the job back on the
    queue and a worker runs it again."""
    worker = spawn_worker()
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("fail", {"message": "upstream down"}, max_attempts=1)
        await wait_for(lambda: _state(client, job_id, "failure"), timeout=20)
        worker.proc.terminate()
        worker.wait()
        async with running_console(redis_url) as console:
            base = str(console.make_url("")).rstrip("/")
            page = await browser.new_page()
            await _sign_in(page, base)
            await page.get_by_role("link", name="Dead letters").click()
            await expect(page.locator(".reason").first).to_contain_text("upstream down")
            await _shot(page, "dead", tmp_path)
            await page.get_by_role("button", name="Requeue").click()
            await page.get_by_role("button", name="Yes, requeue").click()
            await expect(page.get_by_role("status")).to_contain_text("queued again")
            await wait_for(lambda: _state(client, job_id, "queued"))
            assert (await client.stats()).dead == 0
        spawn_worker()
        await wait_for(lambda: _state(client, job_id, "failure"), timeout=20)


async def test_credentials_refused_and_accepted(browser: Browser, redis_url: str) -> None:
    """Without credentials the browser lands on the sign-in page; a wrong token is refused; the
    basic-auth user and password open the console, typed into the page or answering the
    browser's prompt."""
    async with running_console(redis_url) as console:
        base = str(console.make_url("")).rstrip("/")
        page = await browser.new_page()
        await page.goto(base + "/jobs")
        await expect(page).to_have_url(base + "/login")
        await page.get_by_label("Token").fill("not-the-right-token")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("Wrong credentials")
        await expect(page.get_by_role("heading", name="Overview")).to_have_count(0)
        await page.get_by_label("User").fill(USER)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    # With basic credentials only, the browser's own prompt (here: Playwright's answer to the
    # challenge) opens the console.
    async with running_console(redis_url, console_token=None) as console:
        base = str(console.make_url("")).rstrip("/")
        refused = await browser.new_page()
        with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            await refused.goto(base + "/")
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD}
        )
        authed = await context.new_page()
        await authed.goto(base + "/")
        await expect(authed.get_by_role("heading", name="Overview")).to_be_visible()
        await context.close()


async def test_read_only_mode_offers_no_actions(
    browser: Browser, redis_url: str, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    """In read-only mode neither a running job's page nor the dead-letter page has an action
    button, and the header says read-only."""
    worker = spawn_worker()
    async with Client(make_settings(redis_url)) as client:
        dead = await client.enqueue("fail", {}, max_attempts=1)
        await wait_for(lambda: _state(client, dead, "failure"), timeout=20)
        running = await client.enqueue("sleep", {"seconds": 120})
        await wait_for(lambda: _state(client, running, "running"), timeout=20)
        async with running_console(redis_url, console_read_only=True) as console:
            base = str(console.make_url("")).rstrip("/")
            page = await browser.new_page()
            await _sign_in(page, base)
            await expect(page.get_by_text("read-only")).to_be_visible()
            await page.goto(f"{base}/job?id={running}")
            await expect(page.get_by_role("heading", name=f"Job {running}")).to_be_visible()
            await expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
            await page.goto(f"{base}/job?id={dead}")
            await expect(page.get_by_role("button", name="Retry job")).to_have_count(0)
            await page.goto(f"{base}/dead")
            await expect(page.locator(".reason")).to_have_count(1)
            await expect(page.get_by_role("button", name="Requeue")).to_have_count(0)
            await expect(page.get_by_role("button", name="Purge all dead letters")).to_have_count(0)
    worker.proc.kill()
    worker.wait()
