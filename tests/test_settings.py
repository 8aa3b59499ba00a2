"""Settings: defaults, validation and start-up errors that name the variable."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from workflow_worker.engine.limits import parse_rate_limits
from workflow_worker.errors import ConfigError
from workflow_worker.settings import Settings, parse_flag
from workflow_worker.workflows.registry import check_rate_limits, load_registry


def test_defaults_match_the_contract() -> None:
    """An empty environment gives the documented defaults."""
    s = Settings.from_env({})
    assert s.redis_url == "redis://localhost:6379/0"
    assert s.queue == "workflow:queue"
    assert s.queues == ("workflow:queue",)
    assert s.concurrency == 50
    assert s.http_port == 8080
    assert s.shutdown_timeout == 300
    assert s.benchmark_mode is False
    assert (s.benchmark_min_seconds, s.benchmark_max_seconds) == (2, 30)
    assert s.workflows == "workflow_worker.builtin:WORKFLOWS"


def test_environment_values_are_parsed() -> None:
    """Every documented variable is read and converted to its type."""
    s = Settings.from_env(
        {
            "REDIS_URL": "rediss://user:pw@redis:6380/2",
            "WORKER_QUEUE": "jobs",
            "WORKER_CONCURRENCY": "7",
            "WORKER_HTTP_PORT": "9000",
            "WORKER_SHUTDOWN_TIMEOUT": "12.5",
            "WORKER_BENCHMARK_MODE": "true",
            "WORKER_BENCHMARK_MIN_SECONDS": "0.1",
            "WORKER_BENCHMARK_MAX_SECONDS": "0.2",
            "WORKER_WORKFLOWS": "app.flows:REGISTRY",
            "WORKER_LOG_LEVEL": "debug",
        }
    )
    assert (s.queue, s.queues, s.concurrency, s.http_port) == ("jobs", ("jobs",), 7, 9000)
    assert s.shutdown_timeout == 12.5
    assert s.benchmark_mode is True
    assert s.workflows == "app.flows:REGISTRY"
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REDIS_URL", "http://redis:6379"),
        ("REDIS_URL", "redis://redis:99999/0"),
        ("REDIS_URL", "redis://redis:63790x/0"),
        ("REDIS_URL", "redis://redis:0"),
        ("WORKER_CONCURRENCY", "zero"),
        ("WORKER_CONCURRENCY", "0"),
        ("WORKER_HTTP_PORT", "70000"),
        ("WORKER_SHUTDOWN_TIMEOUT", "-1"),
        ("WORKER_BENCHMARK_MODE", "maybe"),
        ("WORKER_BENCHMARK_MAX_SECONDS", "nan"),
        ("WORKER_WORKFLOWS", "no_colon_here"),
        ("WORKER_LOG_FORMAT", "xml"),
        ("REDIS_MODE", "galaxy"),
        ("WORKER_LEASE_SECONDS", "0"),
        ("REDIS_URL", "redis://redis:6379/zero"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    """A bad value raises ConfigError whose message names the variable and what is allowed."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: value})
    assert info.value.variable == variable
    assert variable in str(info.value)
    assert "expected" in str(info.value)


@pytest.mark.parametrize(
    ("name", "flag", "variable", "raw"),
    [
        ("concurrency", "--concurrency", "WORKER_CONCURRENCY", "0"),
        ("concurrency", "--concurrency", "WORKER_CONCURRENCY", "10001"),
        ("http_port", "--http-port", "WORKER_HTTP_PORT", "99999"),
        ("http_port", "--http-port", "WORKER_HTTP_PORT", "-1"),
        ("redis_url", "--redis-url", "REDIS_URL", "redis://redis:70000"),
        ("queue", "--queue", "WORKER_QUEUE", " , "),
        ("max_attempts", "--max-attempts", "WORKER_MAX_ATTEMPTS", "0"),
        ("job_timeout", "--timeout", "WORKER_JOB_TIMEOUT", "inf"),
    ],
)
def test_flags_are_refused_like_their_variables(
    name: str, flag: str, variable: str, raw: str
) -> None:
    """A flag's value goes through its variable's parser: refused with the same limits, the
    error naming the flag."""
    with pytest.raises(ConfigError) as from_env:
        Settings.from_env({variable: raw})
    with pytest.raises(ConfigError) as from_flag:
        parse_flag(name, flag, raw)
    assert from_flag.value.variable == flag
    assert (
        str(from_flag.value)
        == f"{flag} {raw} is not valid: expected " + str(from_env.value).split("expected ", 1)[1]
    )


def test_flags_take_the_values_their_variables_take() -> None:
    """A good flag value parses to what the same text in the environment gives."""
    for name, variable, raw in (
        ("concurrency", "WORKER_CONCURRENCY", " 7 "),
        ("http_port", "WORKER_HTTP_PORT", "0"),
        ("queue", "WORKER_QUEUE", "jobs"),
        ("redis_url", "REDIS_URL", "rediss://u:p@redis:6380/2"),
    ):
        assert parse_flag(name, "--x", raw) == getattr(Settings.from_env({variable: raw}), name)


def test_min_above_max_is_rejected() -> None:
    """The benchmark range must not be inverted."""
    with pytest.raises(ConfigError, match="WORKER_BENCHMARK_MIN_SECONDS"):
        Settings.from_env(
            {"WORKER_BENCHMARK_MIN_SECONDS": "5", "WORKER_BENCHMARK_MAX_SECONDS": "1"}
        )


def test_password_is_redacted_in_errors() -> None:
    """A rejected URL never echoes its password."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"REDIS_URL": "http://user:hunter2@redis:6379"})
    assert "hunter2" not in str(info.value)


def test_password_is_not_in_repr() -> None:
    """Settings can be logged without leaking the Redis or the Sentinel password."""
    s = Settings.from_env({"REDIS_PASSWORD": "hunter2", "REDIS_SENTINEL_PASSWORD": "s3ntinel"})
    assert s.redis_sentinel_password == "s3ntinel"
    assert "hunter2" not in repr(s)
    assert "s3ntinel" not in repr(s)


@pytest.mark.parametrize(
    "variable", ["REDIS_TLS_CA_FILE", "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE"]
)
def test_tls_files_need_a_rediss_url(variable: str) -> None:
    """A TLS file next to a redis:// URL is refused rather than silently ignored (plaintext)."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"REDIS_URL": "redis://redis:26379/0", variable: "/etc/ca.pem"})
    assert info.value.variable == variable
    assert "rediss://" in str(info.value)
    assert Settings.from_env({"REDIS_URL": "rediss://redis:26379/0", variable: "/etc/ca.pem"})


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"WORKER_CONCURRENCY": "lots"}, "WORKER_CONCURRENCY"),
        ({"WORKER_WORKFLOWS": "no.such.module:FLOWS"}, "WORKER_WORKFLOWS"),
        ({"WORKER_WORKFLOWS": "workflow_worker.builtin:NOPE"}, "WORKER_WORKFLOWS"),
    ],
)
def test_worker_refuses_to_start_with_a_clear_error(
    redis_url: str, env: dict[str, str], needle: str
) -> None:
    """`workflow-worker run` exits 2 at start-up and names the bad setting."""
    proc = run_cli(redis_url, "run", timeout=30, WORKER_HTTP_PORT="0", **env)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert "configuration error" in proc.stderr


def test_rate_limits_must_name_workflows_of_the_registry() -> None:
    """A limit on a workflow the registry lacks is refused naming WORKER_RATE_LIMITS and the
    closest workflow; limits on known workflows pass; benchmark mode accepts any name."""
    registry = load_registry("workflow_worker.builtin:WORKFLOWS")
    typo = Settings(rate_limits=parse_rate_limits('{"echo": "5/s", "slep": {"concurrent": 2}}'))
    with pytest.raises(ConfigError) as info:
        check_rate_limits(typo, registry)
    assert info.value.variable == "WORKER_RATE_LIMITS"
    assert "it limits 'slep'" in str(info.value)
    assert str(info.value).endswith("did you mean 'sleep'?")
    check_rate_limits(Settings(rate_limits=parse_rate_limits('{"sleep": "5/s"}')), registry)
    check_rate_limits(
        Settings(rate_limits=parse_rate_limits('{"loadtest": "5/s"}'), benchmark_mode=True),
        registry,
    )
