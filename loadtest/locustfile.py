"""The load-test scenario: API-like producers of benchmark-mode workflows (plumbing and SLO gates
are in `loadtest.redis_user`, shapes in `loadtest.shapes`)."""

from __future__ import annotations

from locust import LoadTestShape, between, task

from loadtest.redis_user import RedisUser
from loadtest.shapes import selected_shape


class WorkflowProducer(RedisUser):
    """Mostly submits a workflow and waits for its result, as an API handler polling for it; now
    and then fires one and forgets it, as a webhook would."""

    wait_time = between(0.05, 0.5)

    @task(4)
    def submit_and_wait(self) -> None:
        self.run_job({"kind": "submit-and-wait"})

    @task(1)
    def fire_and_forget(self) -> None:
        self.enqueue({"kind": "fire-and-forget"})


# locust picks up a LoadTestShape class found in this module; None leaves users constant.
LoadShape: type[LoadTestShape] | None = selected_shape()
