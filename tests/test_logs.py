"""Structured logs: one JSON line per job start and end, text for people, buffered safely."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable
from pathlib import Path

import redis

from tests.conftest import WorkerProcess, wait_until
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.ops.logs import BufferedHandler, JsonFormatter, TextFormatter

KEYS = QueueKeys.for_queue("workflow:queue")


def test_job_start_and_end_lines(
    spawn_worker: Callable[..., WorkerProcess], sync_redis: redis.Redis
) -> None:
    """Each job logs a start line and an end line with id, workflow, attempt, duration, outcome."""
    worker = spawn_worker(WORKER_LOG_FLUSH_INTERVAL="0")
    sync_redis.lpush("workflow:queue", json.dumps({"workflow": "echo", "id": "log-1"}))
    wait_until(lambda: sync_redis.hget(KEYS.job("log-1"), "state") == b"success")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    records = [r for r in worker.log_records() if r.get("job_id") == "log-1"]
    start, end = records
    assert start["message"] == "job started"
    assert (start["workflow"], start["attempt"], start["level"]) == ("echo", 1, "info")
    assert end["message"] == "job finished"
    assert end["outcome"] == "success"
    assert end["duration_s"] >= 0
    assert end["time"].endswith("Z")


def test_formatters_render_extra_fields() -> None:
    """JSON lines carry `extra` fields; text lines show them as key=value."""
    record = logging.LogRecord(
        "workflow_worker.jobs", logging.INFO, "", 0, "job started", None, None
    )
    record.job_id = "abc"
    data = json.loads(JsonFormatter().format(record))
    assert (data["message"], data["job_id"], data["logger"]) == (
        "job started",
        "abc",
        "workflow_worker.jobs",
    )
    assert "job_id=abc" in TextFormatter().format(record)


def test_buffered_handler_flushes_warnings_at_once(tmp_path: Path) -> None:
    """INFO lines may wait in the buffer; a warning flushes everything before it."""
    path = tmp_path / "log.txt"
    with path.open("w") as stream:
        handler = BufferedHandler(stream, interval=60)
        handler.setFormatter(JsonFormatter())
        info = logging.LogRecord("x", logging.INFO, "", 0, "quiet", None, None)
        handler.handle(info)
        handler.handle(info)  # the first line after start-up may flush; the second must wait
        assert path.read_text().count("quiet") < 2
        handler.handle(logging.LogRecord("x", logging.WARNING, "", 0, "loud", None, None))
        text = path.read_text()
        assert text.count("quiet") == 2
        assert "loud" in text
        handler.close()


async def test_a_buffered_line_is_flushed_within_the_interval(tmp_path: Path) -> None:
    """A lone INFO line reaches the stream one interval later, with no later line to push it."""
    path = tmp_path / "log.txt"
    with path.open("w") as stream:
        handler = BufferedHandler(stream, interval=0.2)
        handler.setFormatter(JsonFormatter())
        info = logging.LogRecord("x", logging.INFO, "", 0, "quiet", None, None)
        handler.handle(info)
        handler.handle(info)
        assert path.read_text().count("quiet") < 2
        await asyncio.sleep(0.5)
        assert path.read_text().count("quiet") == 2
        handler.close()
