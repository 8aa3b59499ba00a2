"""docs/quickstart.md works as written: its files are written verbatim, its commands are run
verbatim (a worker in the background, the rest to completion) against a real server, and each
command block followed by a `text` block prints exactly that."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.conftest import ROOT, wait_until
from workflow_worker.engine.keys import QueueKeys

QUICKSTART = ROOT / "docs" / "quickstart.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


@dataclass
class Block:
    lang: str
    text: str


def _blocks() -> list[Block]:
    return [Block(m.group(1), m.group(2)) for m in BLOCK.finditer(QUICKSTART.read_text())]


def test_quickstart_blocks_are_what_the_test_expects() -> None:
    """The guide has its install line, two files, a worker command and an expected output."""
    blocks = _blocks()
    files = [b.text.splitlines()[0] for b in blocks if b.lang == "python"]
    assert files == ["# flows.py", "# enqueue.py"]
    assert blocks[0] == Block("sh", "pip install workflow-worker\n")
    assert any(b.lang == "text" for b in blocks)


def test_quickstart_runs_verbatim(tmp_path: Path, redis_url: str) -> None:
    """Following the guide from an empty directory: the worker starts, `python enqueue.py`
    prints the guide's output, the shell commands succeed, and Ctrl-C stops the worker with 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "REDIS_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        REDIS_URL=redis_url,
        WORKER_HTTP_PORT="0",
        PYTHONPATH=str(ROOT),
    )
    blocks = _blocks()
    worker: subprocess.Popen[str] | None = None
    try:
        for n, block in enumerate(blocks):
            if block.lang == "python":
                name = block.text.splitlines()[0].removeprefix("# ")
                (tmp_path / name).write_text(block.text)
                continue
            if block.lang != "sh":
                continue
            for command in block.text.splitlines():
                if command.startswith("pip install"):
                    continue  # installed already: the test runs in the package's environment
                if command.endswith("workflow-worker run"):
                    worker = _start_worker(command, tmp_path, env, redis_url)
                    continue
                done = subprocess.run(
                    ["bash", "-c", command],
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert done.returncode == 0, f"{command}: {done.stderr}"
                follows = blocks[n + 1] if n + 1 < len(blocks) else None
                if follows is not None and follows.lang == "text":
                    assert done.stdout == follows.text
        assert worker is not None
        worker.send_signal(signal.SIGINT)  # Ctrl-C
        assert worker.wait(60) == 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()


def _start_worker(
    command: str, cwd: Path, env: dict[str, str], redis_url: str
) -> subprocess.Popen[str]:
    # bash runs a lone command in its own process, so the signal reaches the worker itself.
    with (cwd / "worker.log").open("w") as log:
        proc = subprocess.Popen(
            ["bash", "-c", command], cwd=cwd, env=env, stdout=log, stderr=log, text=True
        )
    workers = QueueKeys.for_queue("workflow:queue").workers
    with redis.Redis.from_url(redis_url) as client:
        wait_until(lambda: proc.poll() is not None or client.zcard(workers) > 0, timeout=30)
    assert proc.poll() is None, (cwd / "worker.log").read_text()
    return proc
