"""A real Prometheus for tests: its own port and data dir, static targets, our rule file loaded.

The binaries come from `.tools/bin` (scripts/install-tools.sh, Debian's 2.42 package) or PATH; a
missing binary is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import re
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from workflow_worker.local.devstack import free_port

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "dashboards" / "workflow-worker.rules.yml"
RULES_TEST = ROOT / "dashboards" / "workflow-worker.rules_test.yml"

Sample = dict[str, Any]


def tool(name: str) -> str:
    """Path of `promtool`/`prometheus`: .tools/bin first, then PATH; raises when missing."""
    local = ROOT / ".tools" / "bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run scripts/install-tools.sh (just tools)")
    return found


class PromQueryError(RuntimeError):
    """Prometheus answered a query with an error."""


def _get(port: int, path: str, params: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    query = "?" + urllib.parse.urlencode(params) if params else ""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path + query)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get_text(port: int, path: str) -> str:
    """GET a local HTTP path and return the body; raises unless the answer is 200."""
    status, body = _get(port, path)
    if status != 200:
        raise PromQueryError(f"GET :{port}{path} -> {status}: {body[:200]!r}")
    return body.decode()


def metric_total(text: str, sample_name: str, **labels: str) -> float:
    """Sum of the samples named `sample_name` whose labels include `labels`, in exposition text."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


@dataclass(frozen=True)
class Target:
    """One static scrape target and the labels Kubernetes discovery would have added."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)


def values(result: Iterable[Sample]) -> list[float]:
    """The float value of every sample of an instant-query result."""
    return [float(sample["value"][1]) for sample in result]


def finite(result: Iterable[Sample]) -> list[float]:
    """The finite values of an instant-query result (drops NaN and infinities)."""
    return [value for value in values(result) if math.isfinite(value)]


class Prometheus:
    """A Prometheus server process scraping `targets` every second and evaluating `rule_files`.

    `extra_jobs` are further scrape configs (other exporters), scraped at the same interval.
    """

    def __init__(
        self,
        data_dir: Path,
        targets: Sequence[Target],
        rule_files: Sequence[Path] = (RULES,),
        *,
        job: str = "workflow-worker",
        extra_jobs: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.data_dir = data_dir
        self.targets = targets
        self.rule_files = rule_files
        self.job = job
        self.extra_jobs = extra_jobs
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    def config(self) -> dict[str, Any]:
        """The prometheus.yml this server runs with."""
        static = [{"targets": [t.address], "labels": dict(t.labels)} for t in self.targets]
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {"job_name": self.job, "static_configs": static},
                *(dict(job) for job in self.extra_jobs),
            ],
        }

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until /-/ready answers."""
        config = self.data_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False), encoding="utf-8")
        log = (self.data_dir / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError):
                if _get(self.port, "/-/ready")[0] == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus not ready: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server log, for error messages."""
        path = self.data_dir / "prometheus.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the server (kill it after 10 s)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> Prometheus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET /api/v1/<path>; returns `data`, raises PromQueryError on an error answer."""
        status, body = _get(self.port, f"/api/v1/{path}", params)
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise PromQueryError(f"{path} {dict(params or {})}: {answer.get('error', body[:300])}")
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Instant query; the result samples (metric labels and [time, value])."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self.api("query", params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[Sample] = data["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Sample]:
        """Range query; each series with its [time, value] pairs under `values`."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
        result: list[Sample] = self.api("query_range", params)["result"]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        """What Grafana's label_values(match, label) lists."""
        result: list[str] = self.api(f"label/{label}/values", {"match[]": match})
        return result

    def rule_groups(self) -> list[dict[str, Any]]:
        """The loaded rule groups with each rule's health, state and last error."""
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def wait_for(
        self,
        expr: str,
        done: Callable[[list[Sample]], bool],
        timeout: float,
        what: str = "",
    ) -> list[Sample]:
        """Poll an instant query until `done(result)`; raise TimeoutError with the last result."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if done(result):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what or expr}: last result {result}")
            time.sleep(0.25)


def grafana_escape(value: str) -> str:
    """A variable value escaped as Grafana's Prometheus data source does it: regex metacharacters
    get a backslash, itself escaped for the PromQL string."""
    return re.sub(r"([\\^$*+?.()|\[\]{}])", r"\\\\\1", value)


def interpolate(expr: str, variables: Mapping[str, str | Sequence[str]], rate_interval: str) -> str:
    """`expr` with dashboard variables replaced as Grafana's Prometheus data source does it.

    A string value is written as is (an "All" custom value such as `.*`); a list of selected
    values is escaped, one alone as itself, several as `(a|b)`.
    """
    text = expr.replace("$__rate_interval", rate_interval)
    for name in sorted(variables, key=len, reverse=True):
        value = variables[name]
        if not isinstance(value, str):
            escaped = [grafana_escape(item) for item in value]
            value = escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        text = text.replace(f"${name}", value)
    return text


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run promtool with `args` and capture its output."""
    return subprocess.run(
        [tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def load_rules(path: Path = RULES) -> list[dict[str, Any]]:
    """Every rule of a rule file, each with its group name under `group`."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [{**rule, "group": group["name"]} for group in doc["groups"] for rule in group["rules"]]


CONTRACT = ROOT / "docs" / "contract.md"
_METRIC_ROW = re.compile(r"^\| `(workflow_[a-z_]+)` \| (counter|gauge|histogram) \|", re.MULTILINE)
_METRIC_REF = re.compile(r"(?<![\w:])(workflow_[a-z_]+)(?![\w:])")
_SERIES_SUFFIX = re.compile(r"_(bucket|count|sum)$")


def contract_metrics() -> dict[str, str]:
    """Metric name -> type, from the metrics table of docs/contract.md."""
    return dict(_METRIC_ROW.findall(CONTRACT.read_text(encoding="utf-8")))


_LABELS_ROW = re.compile(
    r"^\| `(workflow_[a-z_]+)` \| (?:counter|gauge|histogram) \| ([^|]+) \|", re.M
)


def contract_labels() -> dict[str, tuple[str, ...]]:
    """Metric name -> its labels ("-" for none), from the metrics table of docs/contract.md."""
    rows = _LABELS_ROW.findall(CONTRACT.read_text(encoding="utf-8"))
    return {
        name: tuple(label.strip() for label in labels.split(",") if label.strip() != "-")
        for name, labels in rows
    }


def referenced_metrics(expr: str) -> set[str]:
    """Worker metric names an expression reads (histogram series suffixes removed)."""
    contract = contract_metrics()
    names = set()
    for name in _METRIC_REF.findall(expr):
        base = _SERIES_SUFFIX.sub("", name)
        names.add(base if contract.get(base) == "histogram" else name)
    return names
