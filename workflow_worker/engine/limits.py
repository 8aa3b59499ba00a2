"""`WORKER_RATE_LIMITS`: per-workflow fleet-wide limits, parsed and validated. Pure, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from workflow_worker.errors import ConfigError

__all__ = ["MAX_LIMIT", "Limits", "parse_rate_limits"]

VARIABLE = "WORKER_RATE_LIMITS"
MAX_LIMIT = 1_000_000
_WINDOWS_MS = {"per_second": 1_000, "per_minute": 60_000, "per_hour": 3_600_000}
_SHORTHAND = {"s": "per_second", "m": "per_minute", "h": "per_hour"}
_FIELDS = (*_WINDOWS_MS, "concurrent")
_FORMAT = (
    'a JSON object {"<workflow>": {"per_second"|"per_minute"|"per_hour"|"concurrent": '
    f'integer 1..{MAX_LIMIT}, ...}} or "<N>/s"|"<N>/m"|"<N>/h"}}'
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one workflow; None means no limit of that kind."""

    per_second: int | None = None
    per_minute: int | None = None
    per_hour: int | None = None
    concurrent: int | None = None

    def windows(self) -> list[tuple[int, int]]:
        """(window length in ms, starts allowed in it) for every rate limit set."""
        out = []
        for name, window_ms in _WINDOWS_MS.items():
            limit = getattr(self, name)
            if limit is not None:
                out.append((window_ms, limit))
        return out


def parse_rate_limits(text: str) -> dict[str, Limits]:
    """Parse `WORKER_RATE_LIMITS`; empty means no limits. Raises ConfigError naming the variable."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(VARIABLE, text, _FORMAT) from None
    if not isinstance(data, dict):
        raise ConfigError(VARIABLE, text, _FORMAT)
    return {_workflow_name(text, name): _limits(text, name, spec) for name, spec in data.items()}


def _workflow_name(text: str, name: str) -> str:
    if not name.strip():
        raise ConfigError(VARIABLE, text, "non-empty workflow names in " + _FORMAT)
    return name


def _limits(text: str, workflow: str, spec: Any) -> Limits:
    if isinstance(spec, str):
        return _shorthand(text, workflow, spec)
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(VARIABLE, text, f"{_FORMAT}; {workflow!r} has {spec!r}")
    unknown = sorted(set(spec) - set(_FIELDS))
    if unknown:
        raise ConfigError(VARIABLE, text, f"only {', '.join(_FIELDS)}; {workflow!r} has {unknown}")
    return Limits(**{key: _count(text, workflow, key, value) for key, value in spec.items()})


def _shorthand(text: str, workflow: str, spec: str) -> Limits:
    number, _, unit = spec.strip().partition("/")
    field = _SHORTHAND.get(unit.strip().lower())
    if field is None or not number.strip().isdigit():
        raise ConfigError(VARIABLE, text, f"{_FORMAT}; {workflow!r} has {spec!r}")
    return Limits(**{field: _count(text, workflow, field, int(number))})


def _count(text: str, workflow: str, key: str, value: Any) -> int:
    # bool is an int in Python, but `true` is never a meaningful limit.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        allowed = f"an integer from 1 to {MAX_LIMIT} for {workflow!r} {key}, got {value!r}"
        raise ConfigError(VARIABLE, text, allowed)
    return value
