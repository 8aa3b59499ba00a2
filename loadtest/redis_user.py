"""The locust plumbing: an abstract `RedisUser` that enqueues the way the API does and reports
enqueue and end-to-end latency as locust requests, plus the SLO gates on `quitting`.

Only the sync redis client is used here: locust runs on gevent, which patches plain sockets, while
uvloop would block every user (see docs/loadtest.md). This module never starts an event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from locust import User, events
from locust.env import Environment
from locust.stats import StatsEntry

from loadtest.config import MARKER, WORKFLOW
from loadtest.slo import Gates, Observed, violations
from workflow_worker.producer.client import JobFailed, JobSpec, SyncClient
from workflow_worker.settings import Settings

__all__ = ["END_TO_END", "ENQUEUE", "RedisUser"]

log = logging.getLogger("loadtest")
ENQUEUE = "enqueue"
END_TO_END = "e2e"
FINAL = {"success", "failure", "dead", "cancelled"}


class RedisUser(User):
    """A producer: `enqueue` fires an `enqueue` request; `run_job` also waits for the job's status
    record to reach a final state and fires an `e2e` request timed from before the enqueue."""

    abstract = True
    client: SyncClient

    def on_start(self) -> None:
        self.client = SyncClient(Settings.from_env())

    def on_stop(self) -> None:
        self.client.close()

    def _fire(self, kind: str, name: str, started: float, exc: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=exc,
            context={},
        )

    def enqueue(
        self, payload: Mapping[str, Any] | None = None, *, workflow: str = WORKFLOW
    ) -> tuple[str, float] | None:
        """Enqueue one marked job; returns (job id, perf_counter before the enqueue)."""
        started = time.perf_counter()
        body = {**(payload or {}), MARKER: True}
        try:
            job_id = self.client.enqueue_many([JobSpec(workflow, body)])[0]
        except Exception as exc:  # every Redis or validation error is a failed request
            self._fire(ENQUEUE, workflow, started, exc)
            return None
        self._fire(ENQUEUE, workflow, started, None)
        return job_id, started

    def _final_record(self, job_id: str, timeout: float, poll: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            record = self.client.status(job_id)
            if record is not None and record.get("state") in FINAL:
                return record
            if time.monotonic() >= deadline:
                return None
            time.sleep(poll)

    def run_job(
        self, payload: Mapping[str, Any] | None = None, *, workflow: str = WORKFLOW
    ) -> None:
        """Enqueue, then poll the status record until the job ends (or the e2e timeout)."""
        enqueued = self.enqueue(payload, workflow=workflow)
        if enqueued is None:
            return
        job_id, started = enqueued
        opts = self.environment.parsed_options
        timeout = float(getattr(opts, "e2e_timeout", 120.0))
        poll = float(getattr(opts, "status_poll_ms", 20.0)) / 1000
        record = self._final_record(job_id, timeout, poll)
        exc: BaseException | None = None
        if record is None:
            exc = TimeoutError(f"job {job_id} not finished after {timeout:g}s")
        elif record.get("state") != "success":
            exc = JobFailed(job_id, record)
        self._fire(END_TO_END, workflow, started, exc)


def _options(parser: Any, **_kw: Any) -> None:
    defaults = Gates()
    parser.add_argument(
        "--slo-failure-ratio",
        type=float,
        default=defaults.max_failure_ratio,
        env_var="LOADTEST_SLO_FAILURE_RATIO",
        help="highest share of failed requests (enqueue and e2e) that passes",
    )
    parser.add_argument(
        "--slo-p95-e2e-ms",
        type=float,
        default=defaults.p95_e2e_ms,
        env_var="LOADTEST_SLO_P95_E2E_MS",
        help="highest p95 enqueue-to-completion latency (ms) that passes",
    )
    parser.add_argument(
        "--slo-p95-enqueue-ms",
        type=float,
        default=defaults.p95_enqueue_ms,
        env_var="LOADTEST_SLO_P95_ENQUEUE_MS",
        help="highest p95 enqueue latency (ms) that passes",
    )
    parser.add_argument(
        "--slo-min-completed",
        type=int,
        default=defaults.min_completed,
        env_var="LOADTEST_SLO_MIN_COMPLETED",
        help="fewest jobs that must complete successfully",
    )
    parser.add_argument("--e2e-timeout", type=float, default=120.0, help="seconds a job may take")
    parser.add_argument("--status-poll-ms", type=float, default=20.0, help="status poll interval")


def _merged(environment: Environment, kind: str) -> StatsEntry:
    merged = StatsEntry(environment.stats, kind, kind)
    for (_name, method), entry in environment.stats.entries.items():
        if method == kind:
            merged.extend(entry)
    return merged


def observed(environment: Environment) -> Observed:
    total = environment.stats.total
    e2e, enq = _merged(environment, END_TO_END), _merged(environment, ENQUEUE)
    return Observed(
        requests=int(total.num_requests),
        failures=int(total.num_failures),
        completed=int(e2e.num_requests - e2e.num_failures),
        p95_e2e_ms=float(e2e.get_response_time_percentile(0.95) or 0),
        p95_enqueue_ms=float(enq.get_response_time_percentile(0.95) or 0),
    )


def _gate(environment: Environment, **_kw: Any) -> None:
    opts = environment.parsed_options
    if opts is None:
        return
    gates = Gates(
        max_failure_ratio=opts.slo_failure_ratio,
        p95_e2e_ms=opts.slo_p95_e2e_ms,
        p95_enqueue_ms=opts.slo_p95_enqueue_ms,
        min_completed=opts.slo_min_completed,
    )
    missed = violations(gates, observed(environment))
    for line in missed:
        log.error("SLO missed: %s", line)
    if missed:
        environment.process_exit_code = 1
        return
    log.info("SLO gates passed (%s)", gates)
    # The failure-ratio gate decides about failed requests; errors raised by the locustfile
    # itself still fail the run through locust's own --exit-code-on-error.
    if environment.runner is not None and not environment.runner.exceptions:
        environment.process_exit_code = 0


# locust's EventHook.add_listener carries no annotations.
events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_gate)  # type: ignore[no-untyped-call]
