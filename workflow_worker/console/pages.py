"""The console's HTML, rendered on the server: no script, no build step, no outside asset.

Every value from Redis passes through `esc`; the only style sheet is inline and allowed by its
hash in the Content-Security-Policy (see `CSP`), so the page runs no script at all.
"""

from __future__ import annotations

import base64
import hashlib
import html
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

__all__ = ["CSP", "Page", "esc"]

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{background:#1d2b3a;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.4rem;
align-items:center;flex-wrap:wrap}
header a{color:#fff;text-decoration:none;font-weight:600}
header form{margin-left:auto;display:flex;gap:.4rem}
main{padding:1rem 1.2rem;max-width:1400px}
h1{font-size:1.25rem;margin:.4rem 0 1rem}h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:1rem}
th,td{border-bottom:1px solid #e3e6ea;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#fff;border:1px solid #e3e6ea;padding:.6rem;overflow:auto;max-height:32rem;
white-space:pre-wrap;word-break:break-word}
.state{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.85em;
background:#e3e6ea}
.success{background:#cdebd3}.failure,.dead{background:#f5c9c9}.running{background:#cfe0fb}
.retrying,.delayed{background:#fbe7bf}.cancelled,.gone{background:#dddddd}
.note{color:#5b6570}.flash{padding:.6rem;border-radius:.3rem;margin-bottom:1rem}
.ok{background:#cdebd3}.bad{background:#f5c9c9}
form.inline{display:inline}button{cursor:pointer;padding:.25rem .7rem}
button.danger{background:#b3261e;color:#fff;border:0;border-radius:.25rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;background:#fff;
padding:.6rem;border:1px solid #e3e6ea}dt{font-weight:600}dd{margin:0}
.filters{display:flex;gap:.6rem;flex-wrap:wrap;align-items:end;margin-bottom:1rem}
.filters label{display:flex;flex-direction:column;font-size:.85em}
"""
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (
    "default-src 'none'; "
    f"style-src 'sha256-{_STYLE_HASH}'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def when(ts: Any) -> str:
    """Unix seconds as UTC time of day with date, or a dash."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def seconds(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def state(name: Any) -> str:
    return f'<span class="state {esc(name)}">{esc(name)}</span>'


def link(path: str, text: Any, **query: Any) -> str:
    params = {k: v for k, v in query.items() if v not in (None, "")}
    href = path + ("?" + urlencode(params) if params else "")
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int] | None = None
) -> str:
    """A table of already escaped cells."""
    numeric = numeric or set()
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="note">none</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def hidden(fields: Mapping[str, Any]) -> str:
    return "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
        for k, v in fields.items()
        if v is not None
    )


@dataclass(frozen=True, slots=True)
class Page:
    """What every page knows of its viewer: the session's CSRF token (None without a session)
    and whether actions are allowed."""

    csrf: str | None
    can_act: bool
    queues: Sequence[str]
    signed_in: bool
    read_only: bool = False

    def render(self, title: str, body: str) -> str:
        logout = ""
        if self.signed_in and self.csrf:
            logout = (
                '<form method="post" action="/logout">'
                + hidden({"csrf": self.csrf})
                + "<button>Sign out</button></form>"
            )
        mode = '<span class="note">read-only</span>' if self.read_only else ""
        return (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)} - workflow-worker console</title>"
            f"<style>{STYLE}</style></head><body><header>"
            '<a href="/">workflow-worker</a><a href="/jobs">Jobs</a>'
            '<a href="/dead">Dead letters</a>'
            '<form method="get" action="/jobs" role="search">'
            '<input name="id" placeholder="job id" aria-label="job id" size="28">'
            "<button>Find job</button></form>"
            f"{mode}{logout}</header><main><h1>{esc(title)}</h1>{body}</main></body></html>"
        )

    def action_button(self, action: str, label: str, fields: Mapping[str, Any]) -> str:
        """A button leading to the confirmation page of an action (none in read-only mode)."""
        if not self.can_act:
            return ""
        return (
            '<form class="inline" method="get" action="/confirm">'
            + hidden({"action": action, **fields})
            + f'<button class="danger">{esc(label)}</button></form>'
        )


def overview(page: Page, queues: list[dict[str, Any]], workers: list[dict[str, Any]]) -> str:
    queue_rows = [
        [
            link("/jobs", q["queue"], queue=q["queue"]),
            str(q["queued"]),
            str(q["inflight"]),
            str(q["delayed"]),
            link("/dead", q["dead"], queue=q["queue"]),
            esc(seconds(q["oldest_age_seconds"])),
            esc(f"{q['finished_last_minute']}{'+' if q['finished_capped'] else ''}"),
            str(q["workers"]),
        ]
        for q in queues
    ]
    worker_rows = [
        [
            link("/jobs", w["id"], worker=w["id"], state="running"),
            esc(w.get("host", "-")),
            esc(w.get("pod") or "-"),
            esc(w.get("version", "-")),
            esc(", ".join(w["queues"])),
            esc(f"{w.get('active', '?')} / {w.get('concurrency', '?')}"),
            str(w["claims"]),
            esc(when(w.get("started_at"))),
            esc(f"{w['lease_left_seconds']:.1f} s"),
        ]
        for w in workers
    ]
    body = (
        "<h2>Queues</h2>"
        + table(
            [
                "queue",
                "waiting",
                "in flight",
                "delayed",
                "dead letters",
                "oldest waiting",
                "finished last minute",
                "live workers",
            ],
            queue_rows,
            {1, 2, 3, 4, 5, 6, 7},
        )
        + "<h2>Workers</h2>"
        + table(
            [
                "worker",
                "host",
                "pod",
                "version",
                "queues",
                "running / capacity",
                "claims",
                "since (UTC)",
                "lease left",
            ],
            worker_rows,
            {6},
        )
    )
    return page.render("Overview", body)


def jobs_list(
    page: Page, rows: list[dict[str, Any]], filters: Mapping[str, str], workflows: list[str]
) -> str:
    def select(name: str, choices: Iterable[str], label: str) -> str:
        current = filters.get(name, "")
        options = '<option value="">all</option>' + "".join(
            f"<option{' selected' if c == current else ''}>{esc(c)}</option>" for c in choices
        )
        return f'<label>{esc(label)}<select name="{name}">{options}</select></label>'

    from workflow_worker.console.reader import STATES

    form = (
        '<form class="filters" method="get" action="/jobs">'
        + select("queue", page.queues, "queue")
        + select("state", STATES, "state")
        + select(
            "workflow", sorted(set(workflows) | {filters.get("workflow", "")} - {""}), "workflow"
        )
        + (hidden({"worker": filters["worker"]}) if filters.get("worker") else "")
        + "<button>Filter</button></form>"
    )
    table_rows = [
        [
            link("/job", r["id"], id=r["id"], queue=r["queue"]),
            esc(r["queue"]),
            state(r["state"]),
            esc(r["workflow"] or "-"),
            esc(f"{r['attempt'] or '-'} / {r['max_attempts'] or '-'}"),
            esc(when(r["changed_at"])),
            esc(r["error"]),
        ]
        for r in rows
    ]
    worker = filters.get("worker")
    note = f'<p class="note">running on worker {esc(worker)}</p>' if worker else ""
    body = (
        form
        + note
        + table(
            ["job", "queue", "state", "workflow", "attempt", "last change (UTC)", "error"],
            table_rows,
        )
        + '<p class="note">Newest changes first, from the recent-jobs index of each queue.</p>'
    )
    return page.render("Jobs", body)


def job_detail(page: Page, job: dict[str, Any]) -> str:
    record = job["record"] or {}
    current = record.get("state", "gone")
    fields = {"id": job["id"], "queue": job["queue"]}
    buttons = ""
    if current in ("queued", "delayed", "running", "retrying"):
        buttons += page.action_button("cancel", "Cancel job", fields)
    if job["dead_letters"] and current in ("failure", "dead", "gone"):
        buttons += page.action_button("retry", "Retry job", fields)
    facts = [
        ("state", state(current)),
        ("queue", esc(job["queue"])),
        ("workflow", esc(record.get("workflow", "-"))),
        ("attempt", esc(f"{record.get('attempt', '-')} of {record.get('max_attempts', '-')}")),
        ("worker", esc(record.get("worker", "-"))),
        ("enqueued (UTC)", esc(when(record.get("enqueued_at")))),
        ("due (UTC)", esc(when(record.get("due_at")))),
        ("started (UTC)", esc(when(record.get("started_at")))),
        ("finished (UTC)", esc(when(record.get("finished_at")))),
        ("run time", esc(seconds(record.get("duration")))),
        ("unique key", esc(record.get("unique_key", "-"))),
        ("message", esc(job["message_place"])),
    ]
    if "progress" in record:
        shown = f"{record['progress']} {record.get('progress_message', '')}".strip()
        facts.insert(1, ("progress", esc(shown)))
    facts += _more_facts(record, job["queue"])
    body = "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    if buttons:
        body += f"<p>{buttons}</p>"
    if job["message"]:
        body += "<h2>Message</h2>" + _text_block(job["message"], "message")
    if record.get("result") not in (None, ""):
        body += "<h2>Result</h2>" + f'<pre id="result">{esc(record["result"])}</pre>'
    if record.get("error"):
        body += "<h2>Error</h2>" + f'<pre id="error">{esc(record["error"])}</pre>'
    if record.get("traceback"):
        body += "<h2>Traceback</h2>" + f'<pre id="traceback">{esc(record["traceback"])}</pre>'
    body += "<h2>History</h2>" + _history(record, job["dead_letters"])
    if not job["record"]:
        body += '<p class="note">The status record has expired (WORKER_RESULT_TTL).</p>'
    return page.render(f"Job {job['id']}", body)


def _more_facts(record: Mapping[str, Any], queue: str) -> list[tuple[str, str]]:
    """What only some jobs have: a deadline, durable steps, a parent, children, a group."""
    facts: list[tuple[str, str]] = []
    if record.get("expires_at") is not None:
        facts.append(("expires (UTC)", esc(when(record["expires_at"]))))
    if record.get("steps_done") is not None:
        last = record.get("last_step")
        facts.append(("steps done", esc(f"{record['steps_done']} (last: {last})")))
    if record.get("step"):
        facts.append(("step running", esc(record["step"])))
    if record.get("parent"):
        facts.append(("parent", link("/job", record["parent"], id=record["parent"], queue=queue)))
    children = record.get("children")
    if isinstance(children, list) and children:
        links = ", ".join(link("/job", child, id=child, queue=queue) for child in children)
        facts.append((f"children ({len(children)})", links))
    if record.get("group_total") is not None:
        done, total = record.get("group_done", 0), record["group_total"]
        counts = f"{done} of {total} ended, {record.get('group_failed', 0)} failed"
        facts.append(("group", esc(counts)))
    elif record.get("group"):
        facts.append(
            ("member of group", link("/job", record["group"], id=record["group"], queue=queue))
        )
    return facts


def _history(record: Mapping[str, Any], dead: list[dict[str, Any]]) -> str:
    """What the records tell of the job's attempts, oldest first."""
    events: list[tuple[float, str]] = []
    attempt = record.get("attempt")
    if isinstance(record.get("enqueued_at"), float):
        events.append((record["enqueued_at"], "enqueued"))
    if isinstance(attempt, int) and attempt > 1:
        events.append(
            (
                record.get("enqueued_at") or 0.0,
                f"attempts 1 to {attempt - 1} failed or were cut off",
            )
        )
    if isinstance(record.get("requeued_at"), float):
        events.append((record["requeued_at"], "put back on the queue"))
    if isinstance(record.get("started_at"), float):
        events.append(
            (record["started_at"], f"attempt {attempt} started on {record.get('worker', '?')}")
        )
    if isinstance(record.get("finished_at"), float):
        events.append((record["finished_at"], f"ended: {record.get('state')}"))
    for entry in dead:
        if entry["failed_at"] is not None:
            events.append(
                (entry["failed_at"], f"dead-lettered ({entry['kind']}): {entry['reason']}")
            )
    events.sort(key=lambda e: e[0])
    return table(["time (UTC)", "event"], [[esc(when(t)), esc(text)] for t, text in events])


def _text_block(shown: Mapping[str, Any], element_id: str) -> str:
    note = ""
    if shown["truncated"]:
        note = f'<p class="note">Cut to the first part of {shown["bytes"]} bytes.</p>'
    return f'<pre id="{element_id}">{esc(shown["text"])}</pre>{note}'


def dead_list(page: Page, data: dict[str, Any]) -> str:
    queue = data["queue"]
    rows = [
        [
            esc(when(e["failed_at"])),
            esc(e["kind"]),
            link("/job", e["job_id"], id=e["job_id"], queue=queue) if e["job_id"] else "-",
            esc(e["workflow"] or "-"),
            f'<span class="reason">{esc(e["reason"])}</span><details><summary>message</summary>'
            + _text_block(e["job"], "dead-" + e["digest"])
            + "</details>",
            page.action_button("requeue", "Requeue", {"queue": queue, "entry": e["digest"]}),
        ]
        for e in data["entries"]
    ]
    purge = ""
    if data["total"]:
        purge = page.action_button("purge", "Purge all dead letters", {"queue": queue})
    queue_links = " ".join(link("/dead", q, queue=q) for q in page.queues)
    start, total, shown = data["start"], data["total"], len(data["entries"])
    more = ""
    if start + shown < total:
        more = link("/dead", "older entries", queue=queue, start=start + shown)
    body = (
        f"<p>Queues: {queue_links}</p><p>{total} dead letters in {esc(queue)}. {purge}</p>"
        + table(["failed (UTC)", "kind", "job", "workflow", "reason", ""], rows)
        + f"<p>{more}</p>"
    )
    return page.render("Dead letters", body)


CONFIRM_TEXT = {
    "cancel": "Cancel job {id} in {queue}? A running job is stopped by its worker.",
    "retry": "Retry job {id} in {queue}? It goes back on the queue with fresh attempts.",
    "requeue": "Put this dead letter of {queue} back on the queue with fresh attempts?",
    "purge": "Delete every dead letter of {queue}? This cannot be undone.",
}


def confirm(page: Page, action: str, fields: Mapping[str, str], detail: str) -> str:
    question = CONFIRM_TEXT[action].format(id=fields.get("id", ""), queue=fields.get("queue", ""))
    body = (
        f"<p>{esc(question)}</p>{detail}"
        '<form method="post" action="/action">'
        + hidden({"action": action, "csrf": page.csrf, **fields})
        + f'<button class="danger">Yes, {esc(action)}</button> '
        + link(*_back(action, fields))
        + "</form>"
    )
    return page.render("Confirm", body)


def _back(action: str, fields: Mapping[str, str]) -> tuple[str, str]:
    if action in ("cancel", "retry"):
        return "/job?" + urlencode(
            {"id": fields.get("id", ""), "queue": fields.get("queue", "")}
        ), "No, go back"
    return "/dead?" + urlencode({"queue": fields.get("queue", "")}), "No, go back"


def result(page: Page, action: str, fields: Mapping[str, str], ok: bool, message: str) -> str:
    href, _ = _back(action, fields)
    flash = f'<p class="flash {"ok" if ok else "bad"}" role="status">{esc(message)}</p>'
    return page.render(
        "Done" if ok else "Not done", flash + f'<p><a href="{esc(href)}">Back</a></p>'
    )


def login(page: Page, *, token: bool, basic: bool, error: str = "") -> str:
    flash = f'<p class="flash bad" role="alert">{esc(error)}</p>' if error else ""
    fields = ""
    if token:
        fields += '<label>Token <input type="password" name="token" autocomplete="off"></label> '
    if basic:
        fields += (
            '<label>User <input name="username" autocomplete="username"></label> '
            '<label>Password <input type="password" name="password" '
            'autocomplete="current-password"></label> '
        )
    body = f'{flash}<form method="post" action="/login">{fields}<button>Sign in</button></form>'
    return page.render("Sign in", body)


def message(page: Page, title: str, text: str) -> str:
    return page.render(title, f"<p>{esc(text)}</p>")
