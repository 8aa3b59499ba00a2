"""The one place that reads the environment: a frozen, validated `Settings`."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from workflow_worker.engine.limits import parse_rate_limits
from workflow_worker.engine.schedule import parse_schedule
from workflow_worker.errors import ConfigError

__all__ = ["ConfigError", "Settings", "claim_limit", "is_queue_name", "parse_flag", "redact_url"]

T = TypeVar("T")

# Redis refuses a bulk string over 512 MiB; a dead-letter entry may escape its message up to
# sixfold (control bytes as \u00XX), so a message must stay well below a sixth of that.
MAX_MESSAGE_BYTES = 64 << 20


def claim_limit(max_payload_bytes: int) -> int:
    """See `Settings.claim_limit`."""
    return max_payload_bytes + max_payload_bytes // 16 + 1024


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_REDIS_MODES = ("standalone", "sentinel", "cluster")
_LOG_FORMATS = ("auto", "json", "text")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _int(var: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(var, raw, f"an integer from {lo} to {hi}") from None
    if not lo <= value <= hi:
        raise ConfigError(var, raw, f"an integer from {lo} to {hi}")
    return value


def _float(var: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(var, raw, f"a number from {lo:g} to {hi:g}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ConfigError(var, raw, f"a number from {lo:g} to {hi:g}")
    return value


def _bool(var: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(var, raw, "0 or 1 (also true/false, yes/no, on/off)")


def _choice(var: str, raw: str, allowed: tuple[str, ...], *, upper: bool = False) -> str:
    value = raw.strip().upper() if upper else raw.strip().lower()
    if value not in allowed:
        raise ConfigError(var, raw, "one of " + ", ".join(allowed))
    return value


def _redis_url(var: str, raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in _REDIS_SCHEMES:
        raise ConfigError(
            var, redact_url(raw), "a URL starting with redis://, rediss:// or unix://"
        )
    try:
        port = parts.port  # raises for a port that is not a number or is over 65535
    except ValueError:
        port = 0
    if port == 0:
        raise ConfigError(var, redact_url(raw), "a port from 1 to 65535 after the host")
    # The path is the database index (Sentinel mode reads it here too, not through redis-py).
    if parts.scheme != "unix" and not re.fullmatch(r"/?(\d{1,5})?", parts.path):
        raise ConfigError(
            var, redact_url(raw), "a database index as the path, e.g. redis://host:6379/0"
        )
    return raw.strip()


def _import_path(var: str, raw: str) -> str:
    module, sep, attr = raw.strip().partition(":")
    if not sep or not module or not attr:
        raise ConfigError(var, raw, "an import path module:attribute, e.g. myapp.flows:WORKFLOWS")
    return raw.strip()


def _queue_names(var: str, raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names or len(set(names)) != len(names):
        raise ConfigError(var, raw, "one or more distinct queue names separated by commas")
    return names


def is_queue_name(name: object) -> bool:
    """Whether `name` is one queue name as WORKER_QUEUE / WORKER_QUEUES accept it, reading back
    as itself (non-empty, no comma, no surrounding blanks)."""
    if not isinstance(name, str):
        return False
    try:
        return _queue_names("WORKER_QUEUE", name) == (name,)
    except ConfigError:
        return False


def _secret(var: str, raw: str, shortest: int) -> str:
    # The value is never put in the message: it is a credential.
    if len(raw) < shortest:
        raise ConfigError(var, None, reason=f"shorter than {shortest} characters")
    return raw


def _names(_var: str, raw: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in raw.split(",") if part.strip())


def _schedule(var: str, raw: str) -> str:
    parse_schedule(raw)
    return raw.strip()


def redact_url(url: str) -> str:
    """`url` with its password replaced by `***`, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the worker and the client read from the environment, validated once."""

    redis_url: str = "redis://localhost:6379/0"
    redis_username: str | None = None
    redis_password: str | None = field(default=None, repr=False)
    redis_mode: str = "standalone"
    redis_sentinel_master: str = "mymaster"
    redis_sentinel_username: str | None = None
    redis_sentinel_password: str | None = field(default=None, repr=False)
    redis_tls_ca_file: str | None = None
    redis_tls_cert_file: str | None = None
    redis_tls_key_file: str | None = None
    queue: str = "workflow:queue"
    queues: tuple[str, ...] = ()
    queue_fairness: int = 10
    concurrency: int = 50
    http_host: str = "0.0.0.0"  # noqa: S104 - the pod's probes and Prometheus must reach it
    http_port: int = 8080
    shutdown_timeout: float = 300.0
    benchmark_mode: bool = False
    benchmark_min_seconds: float = 2.0
    benchmark_max_seconds: float = 30.0
    workflows: str = "workflow_worker.builtin:WORKFLOWS"
    lease_seconds: float = 30.0
    job_timeout: float = 600.0
    max_attempts: int = 3
    retry_backoff_seconds: float = 1.0
    retry_backoff_max_seconds: float = 300.0
    result_ttl: int = 86400
    max_payload_bytes: int = 1_048_576
    max_result_bytes: int = 1_048_576
    crash_redelivery_limit: int = 5
    allow_eviction: bool = False
    loop_block_seconds: float = 1.0
    loop_stall_limit: float = 300.0
    rate_limits: Mapping[str, Any] = field(default_factory=dict)
    schedule: str = ""
    metrics_interval: float = 5.0
    log_format: str = "auto"
    log_level: str = "INFO"
    log_flush_interval: float = 0.2
    pod_deletion_cost: bool = False
    pod_deletion_cost_interval: float = 30.0
    pod_name: str = ""
    pod_namespace: str = ""
    kubernetes_service_host: str = ""
    kubernetes_service_port: str = "443"
    # Threads for plain `def` workflows (started only as sync calls need them).
    sync_threads: int = 16
    # module:function of an async context manager factory run around the worker's life.
    lifespan: str = ""
    recent_jobs: int = 10_000
    # The job console (`workflow-worker console`, docs/console.md); checked when it starts.
    console_host: str = "0.0.0.0"  # noqa: S104 - reached through the pod's Service
    console_port: int = 8090
    console_token: str | None = field(default=None, repr=False)
    console_username: str | None = None
    console_password: str | None = field(default=None, repr=False)
    console_anonymous: bool = False
    console_read_only: bool = False
    console_redact: tuple[str, ...] = ("password", "secret", "token", "api_key", "authorization")
    console_payload_bytes: int = 16_384
    console_secure_cookies: bool = False

    def __post_init__(self) -> None:
        if not self.queues:
            object.__setattr__(self, "queues", (self.queue,))
        tls_files = {
            "REDIS_TLS_CA_FILE": self.redis_tls_ca_file,
            "REDIS_TLS_CERT_FILE": self.redis_tls_cert_file,
            "REDIS_TLS_KEY_FILE": self.redis_tls_key_file,
        }
        for var, value in tls_files.items():
            # A TLS file next to a plaintext URL would otherwise mean plaintext without a word.
            if value and urlsplit(self.redis_url).scheme != "rediss":
                raise ConfigError(var, value, "set only with a rediss:// REDIS_URL")
        if self.pod_deletion_cost:
            self._check_pod_identity()
        if self.benchmark_min_seconds > self.benchmark_max_seconds:
            raise ConfigError(
                "WORKER_BENCHMARK_MIN_SECONDS",
                str(self.benchmark_min_seconds),
                f"at most WORKER_BENCHMARK_MAX_SECONDS ({self.benchmark_max_seconds:g})",
            )
        if self.retry_backoff_seconds > self.retry_backoff_max_seconds:
            raise ConfigError(
                "WORKER_RETRY_BACKOFF_SECONDS",
                str(self.retry_backoff_seconds),
                f"at most WORKER_RETRY_BACKOFF_MAX_SECONDS ({self.retry_backoff_max_seconds:g})",
            )

    def _check_pod_identity(self) -> None:
        """WORKER_POD_DELETION_COST needs to know which pod it is and where the API server is."""
        needed = {
            "POD_NAME": (self.pod_name, "the pod's name (downward API metadata.name)"),
            "KUBERNETES_SERVICE_HOST": (
                self.kubernetes_service_host,
                "the API server address Kubernetes sets in every pod",
            ),
        }
        for var, (value, allowed) in needed.items():
            if not value:
                raise ConfigError(var, value, f"{allowed}, needed by WORKER_POD_DELETION_COST=1")
        # Read only when the feature is on: an unused variable must not stop a worker.
        _int("KUBERNETES_SERVICE_PORT", self.kubernetes_service_port, 1, 65535)

    @property
    def claim_limit(self) -> int:
        """The largest message a worker runs: the producers' limit plus a sixteenth and 1 KiB,
        room for what a worker adds when it writes a job back (attempt, id, re-encoded
        numbers), so a job just under the limit can still be retried."""
        return claim_limit(self.max_payload_bytes)

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between lease renewals: a third of the lease, so two may fail in a row."""
        return self.lease_seconds / 3

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read and validate every setting; raise `ConfigError` naming the first bad variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (var, parse) in _PARSERS.items():
            raw = env.get(var)
            if raw is not None and raw.strip() != "":
                values[name] = parse(var, raw)
        limits = env.get("WORKER_RATE_LIMITS", "")
        if limits.strip():
            values["rate_limits"] = parse_rate_limits(limits)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "queues" not in values and "queue" in values:
            values["queues"] = (values["queue"],)
        if "queue" not in values and "queues" in values:
            values["queue"] = values["queues"][0]
        return cls(**values)

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed (CLI flags), validated again."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in changes.items() if k in known and v is not None})


def parse_flag(name: str, flag: str, raw: str) -> Any:
    """A command-line flag's value, checked by the parser of the variable it overrides, so
    `--concurrency 0` is refused exactly as `WORKER_CONCURRENCY=0` is; errors name the flag."""
    _var, parse = _PARSERS[name]
    return parse(flag, raw)


def _p(var: str, parse: Callable[[str, str], T]) -> tuple[str, Callable[[str, str], T]]:
    return var, parse


_PARSERS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "redis_url": _p("REDIS_URL", _redis_url),
    "redis_username": _p("REDIS_USERNAME", lambda _v, r: r),
    "redis_password": _p("REDIS_PASSWORD", lambda _v, r: r),
    "redis_mode": _p("REDIS_MODE", lambda v, r: _choice(v, r, _REDIS_MODES)),
    "redis_sentinel_master": _p("REDIS_SENTINEL_MASTER", lambda _v, r: r.strip()),
    "redis_sentinel_username": _p("REDIS_SENTINEL_USERNAME", lambda _v, r: r),
    "redis_sentinel_password": _p("REDIS_SENTINEL_PASSWORD", lambda _v, r: r),
    "redis_tls_ca_file": _p("REDIS_TLS_CA_FILE", lambda _v, r: r.strip()),
    "redis_tls_cert_file": _p("REDIS_TLS_CERT_FILE", lambda _v, r: r.strip()),
    "redis_tls_key_file": _p("REDIS_TLS_KEY_FILE", lambda _v, r: r.strip()),
    "queue": _p("WORKER_QUEUE", lambda v, r: _queue_names(v, r)[0]),
    "queues": _p("WORKER_QUEUES", _queue_names),
    "queue_fairness": _p("WORKER_QUEUE_FAIRNESS", lambda v, r: _int(v, r, 0, 1000)),
    "concurrency": _p("WORKER_CONCURRENCY", lambda v, r: _int(v, r, 1, 10_000)),
    "http_host": _p("WORKER_HTTP_HOST", lambda _v, r: r.strip()),
    "http_port": _p("WORKER_HTTP_PORT", lambda v, r: _int(v, r, 0, 65535)),
    "shutdown_timeout": _p("WORKER_SHUTDOWN_TIMEOUT", lambda v, r: _float(v, r, 0, 86_400)),
    "benchmark_mode": _p("WORKER_BENCHMARK_MODE", _bool),
    "benchmark_min_seconds": _p(
        "WORKER_BENCHMARK_MIN_SECONDS", lambda v, r: _float(v, r, 0, 86_400)
    ),
    "benchmark_max_seconds": _p(
        "WORKER_BENCHMARK_MAX_SECONDS", lambda v, r: _float(v, r, 0, 86_400)
    ),
    "workflows": _p("WORKER_WORKFLOWS", _import_path),
    "lease_seconds": _p("WORKER_LEASE_SECONDS", lambda v, r: _float(v, r, 1, 3600)),
    "job_timeout": _p("WORKER_JOB_TIMEOUT", lambda v, r: _float(v, r, 0.001, 7 * 86_400)),
    "max_attempts": _p("WORKER_MAX_ATTEMPTS", lambda v, r: _int(v, r, 1, 1000)),
    "retry_backoff_seconds": _p(
        "WORKER_RETRY_BACKOFF_SECONDS", lambda v, r: _float(v, r, 0, 86_400)
    ),
    "retry_backoff_max_seconds": _p(
        "WORKER_RETRY_BACKOFF_MAX_SECONDS", lambda v, r: _float(v, r, 0, 7 * 86_400)
    ),
    "result_ttl": _p("WORKER_RESULT_TTL", lambda v, r: _int(v, r, 1, 365 * 86_400)),
    "max_payload_bytes": _p(
        "WORKER_MAX_PAYLOAD_BYTES", lambda v, r: _int(v, r, 64, MAX_MESSAGE_BYTES)
    ),
    "max_result_bytes": _p(
        "WORKER_MAX_RESULT_BYTES", lambda v, r: _int(v, r, 64, MAX_MESSAGE_BYTES)
    ),
    "crash_redelivery_limit": _p("WORKER_CRASH_REDELIVERY_LIMIT", lambda v, r: _int(v, r, 1, 1000)),
    "allow_eviction": _p("WORKER_ALLOW_EVICTION", _bool),
    "loop_block_seconds": _p("WORKER_LOOP_BLOCK_SECONDS", lambda v, r: _float(v, r, 0.05, 3600)),
    "loop_stall_limit": _p("WORKER_LOOP_STALL_LIMIT", lambda v, r: _float(v, r, 1, 7 * 86_400)),
    "metrics_interval": _p("WORKER_METRICS_INTERVAL", lambda v, r: _float(v, r, 0.1, 3600)),
    "schedule": _p("WORKER_SCHEDULE", _schedule),
    "log_format": _p("WORKER_LOG_FORMAT", lambda v, r: _choice(v, r, _LOG_FORMATS)),
    "log_level": _p("WORKER_LOG_LEVEL", lambda v, r: _choice(v, r, _LOG_LEVELS, upper=True)),
    "log_flush_interval": _p("WORKER_LOG_FLUSH_INTERVAL", lambda v, r: _float(v, r, 0, 60)),
    "pod_deletion_cost": _p("WORKER_POD_DELETION_COST", _bool),
    "pod_deletion_cost_interval": _p(
        "WORKER_POD_DELETION_COST_INTERVAL", lambda v, r: _float(v, r, 1, 3600)
    ),
    "pod_name": _p("POD_NAME", lambda _v, r: r.strip()),
    "pod_namespace": _p("POD_NAMESPACE", lambda _v, r: r.strip()),
    "kubernetes_service_host": _p("KUBERNETES_SERVICE_HOST", lambda _v, r: r.strip()),
    "kubernetes_service_port": _p("KUBERNETES_SERVICE_PORT", lambda _v, r: r.strip()),
    "sync_threads": _p("WORKER_SYNC_THREADS", lambda v, r: _int(v, r, 1, 1024)),
    "lifespan": _p("WORKER_LIFESPAN", _import_path),
    "recent_jobs": _p("WORKER_RECENT_JOBS", lambda v, r: _int(v, r, 0, 1_000_000)),
    "console_host": _p("WORKER_CONSOLE_HOST", lambda _v, r: r.strip()),
    "console_port": _p("WORKER_CONSOLE_PORT", lambda v, r: _int(v, r, 0, 65535)),
    "console_token": _p("WORKER_CONSOLE_TOKEN", lambda v, r: _secret(v, r, 16)),
    "console_username": _p("WORKER_CONSOLE_USERNAME", lambda _v, r: r.strip()),
    "console_password": _p("WORKER_CONSOLE_PASSWORD", lambda v, r: _secret(v, r, 8)),
    "console_anonymous": _p("WORKER_CONSOLE_ANONYMOUS", _bool),
    "console_read_only": _p("WORKER_CONSOLE_READ_ONLY", _bool),
    "console_redact": _p("WORKER_CONSOLE_REDACT", _names),
    "console_payload_bytes": _p(
        "WORKER_CONSOLE_PAYLOAD_BYTES", lambda v, r: _int(v, r, 256, MAX_MESSAGE_BYTES)
    ),
    "console_secure_cookies": _p("WORKER_CONSOLE_SECURE_COOKIES", _bool),
}
