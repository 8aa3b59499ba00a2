"""SLO gates for the locust run: pure checks over the run's numbers (no locust import here, so
tests and other tools can use them; `redis_user` wires them to locust's `quitting` event)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Gates", "Observed", "violations"]


@dataclass(frozen=True, slots=True)
class Gates:
    """Limits a run must stay within; each is a locust option (`--slo-...`) with a default."""

    max_failure_ratio: float = 0.01
    p95_e2e_ms: float = 5000.0
    p95_enqueue_ms: float = 500.0
    min_completed: int = 1


@dataclass(frozen=True, slots=True)
class Observed:
    """What the run measured."""

    requests: int
    failures: int
    completed: int
    p95_e2e_ms: float
    p95_enqueue_ms: float


def violations(gates: Gates, seen: Observed) -> list[str]:
    """One line per missed gate; empty when the run passes."""
    out: list[str] = []
    ratio = seen.failures / seen.requests if seen.requests else 0.0
    if ratio > gates.max_failure_ratio:
        out.append(
            f"failure ratio {ratio:.2%} ({seen.failures}/{seen.requests}) is over "
            f"{gates.max_failure_ratio:.2%}"
        )
    if seen.completed < gates.min_completed:
        out.append(f"{seen.completed} jobs completed, fewer than {gates.min_completed}")
    if seen.completed and seen.p95_e2e_ms > gates.p95_e2e_ms:
        out.append(
            f"p95 end-to-end latency {seen.p95_e2e_ms:.0f} ms is over {gates.p95_e2e_ms:.0f} ms"
        )
    if seen.requests and seen.p95_enqueue_ms > gates.p95_enqueue_ms:
        out.append(
            f"p95 enqueue latency {seen.p95_enqueue_ms:.0f} ms is over "
            f"{gates.p95_enqueue_ms:.0f} ms"
        )
    return out
