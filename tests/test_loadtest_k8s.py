"""The cluster path of `python -m loadtest.ctl` (TARGET=k8s), against a fake kubectl on PATH.

No cluster runs here: tests/fake_kubectl.py records every call, answers from a Deployment JSON
file it edits on `set env`, and runs `exec` commands locally against the test's Redis.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from loadtest.k8s import DRAIN_SOURCE, LUA
from tests.loadtest_helpers import ROOT, clean_env, run_module, state_dir
from workflow_worker.engine.keys import QueueKeys

__all__ = ["state_dir"]

NAME = "workflow-worker"
GLOBAL = ["--context", "kind-loadtest", "--namespace", "jobs"]


def _deployment(mode: str | None) -> dict[str, Any]:
    env = [{"name": "EXTRA", "value": "kept"}]
    if mode is not None:
        env.insert(0, {"name": "WORKER_BENCHMARK_MODE", "value": mode})
    return {
        "metadata": {"name": NAME},
        "spec": {
            "replicas": 3,
            "template": {"spec": {"containers": [{"name": "worker", "env": env}]}},
        },
        "status": {"replicas": 3, "readyReplicas": 2},
    }


def _fake_kubectl(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl"
    fake = ROOT / "tests" / "fake_kubectl.py"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n')
    script.chmod(0o755)
    return bin_dir


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("previous", ["0", None], ids=["mode-was-0", "mode-was-unset"])
def test_k8s_start_status_stop_calls_and_restore(
    tmp_path: Path, state_dir: Path, redis_url: str, previous: str | None
) -> None:
    """start records the Deployment's benchmark mode, turns it on, waits for the rollout and pushes
    jobs from inside a pod; status reads the CLI's JSON and the Deployment; stop (with no TARGET
    set) drops the waiting jobs in the pod and restores the exact previous mode."""
    store = tmp_path / "deployment.json"
    original = _deployment(previous)
    store.write_text(json.dumps(original))
    log = tmp_path / "kubectl.log"
    path = f"{_fake_kubectl(tmp_path)}:{Path(sys.executable).parent}:/usr/bin:/bin"
    fake = {
        "PATH": path,
        "FAKE_KUBECTL_LOG": str(log),
        "FAKE_KUBECTL_DEPLOYMENT": str(store),
        "REDIS_URL": redis_url,  # what the pod's own environment provides
    }
    cluster = {"TARGET": "k8s", "KUBE_CONTEXT": "kind-loadtest", "NAMESPACE": "jobs"}
    env = clean_env(state_dir, **fake, **cluster)

    started = run_module("loadtest.ctl", "start", "5", env=env)
    assert started.returncode == 0, started.stderr
    assert "pushed 5 jobs" in started.stdout
    on = json.loads(store.read_text())["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "WORKER_BENCHMARK_MODE", "value": "1"} in on
    payload = _calls(log)[3][-1]
    assert json.loads(payload)["loadtest"] is True

    frame = run_module("loadtest.ctl", "status", "--once", env=env)
    assert frame.returncode == 0, frame.stderr
    assert "pods            3 (ready 2, desired 3)" in frame.stdout
    assert "queue depth         5" in frame.stdout

    stopped = run_module("loadtest.ctl", "stop", env=clean_env(state_dir, **fake))
    assert stopped.returncode == 0, stopped.stderr
    assert "removed 5 waiting" in stopped.stdout
    assert json.loads(store.read_text()) == original
    assert not (state_dir / "state.json").exists()

    restore = "WORKER_BENCHMARK_MODE-" if previous is None else f"WORKER_BENCHMARK_MODE={previous}"
    exec_ = [*GLOBAL, "exec", f"deploy/{NAME}", "--"]
    assert _calls(log) == [
        [*GLOBAL, "get", "deployment", NAME, "-o", "json"],
        [*GLOBAL, "set", "env", f"deployment/{NAME}", "WORKER_BENCHMARK_MODE=1"],
        [*GLOBAL, "rollout", "status", f"deployment/{NAME}", "--timeout=600s"],
        [*exec_, "workflow-worker", "enqueue", "loadtest", "--count", "5", "--payload", payload],
        [*exec_, "workflow-worker", "status", "--json"],
        [*GLOBAL, "get", "deployment", NAME, "-o", "json"],
        [*exec_, "python", "-c", DRAIN_SOURCE, "drop", LUA],
        [*GLOBAL, "set", "env", f"deployment/{NAME}", restore],
    ]


def test_k8s_second_start_only_pushes(tmp_path: Path, state_dir: Path, redis_url: str) -> None:
    """A second start while a cluster run is recorded pushes more jobs without recording the
    (now benchmark) mode again, so stop still restores the original value."""
    store = tmp_path / "deployment.json"
    store.write_text(json.dumps(_deployment("0")))
    log = tmp_path / "kubectl.log"
    path = f"{_fake_kubectl(tmp_path)}:{Path(sys.executable).parent}:/usr/bin:/bin"
    env = clean_env(
        state_dir,
        PATH=path,
        FAKE_KUBECTL_LOG=str(log),
        FAKE_KUBECTL_DEPLOYMENT=str(store),
        REDIS_URL=redis_url,
        TARGET="k8s",
    )
    for _ in range(2):
        assert run_module("loadtest.ctl", "start", "2", env=env).returncode == 0
    assert [c[0] for c in _calls(log)] == ["get", "set", "rollout", "exec", "exec"]
    assert json.loads((state_dir / "state.json").read_text())["pushed"] == 4
    assert run_module("loadtest.ctl", "stop", env=env).returncode == 0
    assert _calls(log)[-1] == ["set", "env", f"deployment/{NAME}", "WORKER_BENCHMARK_MODE=0"]
    with redis.Redis.from_url(redis_url) as client:
        assert client.llen(QueueKeys.for_queue("workflow:queue").queue) == 0
