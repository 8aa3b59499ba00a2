"""bench/compare: the side-by-side benchmark runs every peer from its own virtualenv, and the
delaying proxy really delays.

Bounded: `--quick` sizes, every system (workflow-worker, Celery prefork and threads, arq, SAQ,
taskiq) plus the production scenario; the peer virtualenvs are created from the pip cache by
scripts/install-peers.sh if missing (about 20 s; `./dev test` installs them first, so the test
only times the comparison).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from bench.compare import COLUMNS, SPECS, Usage, medians, ping_rtt_ms
from bench.proxy import DelayProxy
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def table_rows(text: str, header_start: str) -> tuple[list[str], list[list[str]]]:
    """The header cells and body rows of the first markdown table whose header starts so."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    body = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        body.append([c.strip() for c in line.strip("|").split("|")])
    return header, body


def number(cell: str) -> float:
    return float(cell.rstrip("x"))


def plausible(header: str, cell: str) -> bool:
    """Finite, and positive; CPU may read 0: without schedstat, /proc counts it in 10 ms ticks,
    and a quick run's I/O jobs or production window can use less than one tick."""
    value = number(cell)
    if not math.isfinite(value):
        return False
    return value >= 0 if "CPU" in header else value > 0


@pytest.mark.slow
@pytest.mark.timeout(360)
def test_quick_comparison_reports_every_system_and_column(tmp_path: Path) -> None:
    """A --quick run installs the peers, measures all six systems and the production scenario,
    and writes a table with every column and finite positive figures, ratios, and a PNG chart."""
    out = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.compare", "--quick", "--output-dir", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the comparison then stops the peers it started.
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=60)
        pytest.fail("the quick comparison did not finish within 240 s:\n" + stderr[-3000:])
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    text = (out / "compare.md").read_text()

    header, rows = table_rows(text, "| system | no-op")
    assert header == ["system", *(c[1] for c in COLUMNS)]
    assert [r[0] for r in rows] == [s.name for s in SPECS]
    for row in rows:
        assert all(plausible(h, c) for h, c in zip(header[1:], row[1:], strict=True)), row

    ratio_header, ratios = table_rows(text, "| system / workflow-worker")
    assert "no-op jobs/s" in ratio_header
    assert "pickup p99 (ms)" in ratio_header
    assert [r[0] for r in ratios] == [s.name for s in SPECS]
    assert all(cell in ("1.00x", "-") for cell in ratios[0][1:])
    for row in ratios[1:]:
        assert all(
            c == "-" or plausible(h, c) for h, c in zip(ratio_header[1:], row[1:], strict=True)
        ), row

    prod_header, production = table_rows(text, "| system | run | processes")
    assert [r[:2] for r in production] == [
        ["workflow-worker", "1"],
        ["celery-prefork x3", "1"],
        ["workflow-worker", "**median**"],
        ["celery-prefork x3", "**median**"],
    ]
    for row in production:
        assert all(plausible(h, c) for h, c in zip(prod_header[2:], row[2:], strict=True)), row

    assert "## Targets" in text
    assert "FAILED" not in stdout
    assert (out / "compare.png").read_bytes()[:8] == PNG_MAGIC


def test_proxy_adds_its_delay_in_each_direction(tmp_path: Path) -> None:
    """A PING through the proxy with 2 ms each way takes at least 4 ms more than a direct one,
    and pipelined commands are delayed once, not once each."""
    with RedisServer(tmp_path / "redis") as server, DelayProxy(server.port, 2.0) as proxy:
        direct = ping_rtt_ms(server.url, count=50)
        proxied = ping_rtt_ms(proxy.url, count=50)
        assert proxied - direct >= 4.0 * 0.95, (direct, proxied)
        with redis.Redis.from_url(proxy.url) as client, client.pipeline() as pipe:
            for i in range(200):
                pipe.set(f"k{i}", i)
            start = time.perf_counter()
            pipe.execute()
            pipelined = (time.perf_counter() - start) * 1000
        assert pipelined < 200 * 4.0 / 4, pipelined
        assert client_value(server.url, "k199") == b"199"


def client_value(url: str, key: str) -> bytes | None:
    with redis.Redis.from_url(url) as client:
        value = client.get(key)
    assert value is None or isinstance(value, bytes)
    return value


def test_production_medians_take_each_figure_over_the_runs() -> None:
    """Each system's production figures are medians over its runs; one failed run fails it."""
    runs = [
        Usage("a", processes=2, wall=30, cpu=0.10, peak_rss_mib=99, idle_cpu_pct=0.05, run=1),
        Usage("b", processes=19, wall=90, cpu=0.50, peak_rss_mib=800, run=1),
        Usage("a", processes=2, wall=31, cpu=0.14, peak_rss_mib=98, idle_cpu_pct=0.07, run=2),
        Usage("b", error="timed out", run=2),
        Usage("a", processes=2, wall=29, cpu=0.12, peak_rss_mib=100, idle_cpu_pct=0.06, run=3),
    ]
    a, b = medians(runs)
    assert (a.name, a.processes, a.wall, a.cpu, a.peak_rss_mib) == ("a", 2, 30, 0.12, 99)
    assert a.idle_cpu_pct == 0.06
    assert a.run == 0
    assert b.name == "b"
    assert b.error == "timed out"
