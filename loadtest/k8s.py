"""The cluster target: benchmark mode on a Deployment through kubectl, jobs pushed and counted
from inside a worker pod (which can reach Redis; this machine may not)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from loadtest.config import MARKER, WORKFLOW, LoadTestConfig
from loadtest.state import RunState, load, remove, save
from loadtest.view import Snapshot

__all__ = ["BENCHMARK_VAR", "K8sTarget", "Kubectl", "KubectlError"]

BENCHMARK_VAR = "WORKER_BENCHMARK_MODE"
HERE = Path(__file__).parent
DRAIN_SOURCE = (HERE / "drain.py").read_text()
LUA = (HERE / "drop_marked-2.lua").read_text()


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message has its command and stderr."""


class Kubectl:
    """`kubectl [--context C] [--namespace N] ...`, output captured."""

    def __init__(self, context: str | None, namespace: str | None, timeout: float = 600) -> None:
        self.prefix = ["kubectl"]
        if context:
            self.prefix += ["--context", context]
        if namespace:
            self.prefix += ["--namespace", namespace]
        self.timeout = timeout

    def run(self, *args: str) -> str:
        argv = [*self.prefix, *args]
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except FileNotFoundError:
            raise KubectlError("kubectl is not on PATH") from None
        if proc.returncode != 0:
            shown = " ".join(a if len(a) < 80 else a[:40] + "..." for a in args)
            raise KubectlError(
                f"kubectl {shown} failed (exit {proc.returncode}): {proc.stderr.strip()}"
            )
        return proc.stdout


def previous_mode(deployment: dict[str, Any]) -> str | None:
    """The Deployment's own WORKER_BENCHMARK_MODE value, None when its containers do not set it
    (then the ConfigMap's value applies, and restoring means removing ours)."""
    for container in (
        deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    ):
        for var in container.get("env") or []:
            if var.get("name") == BENCHMARK_VAR:
                if "valueFrom" in var:
                    raise KubectlError(
                        f"{BENCHMARK_VAR} comes from valueFrom on this Deployment; set benchmark "
                        "mode through its source (helm value worker.benchmark.enabled) instead"
                    )
                return str(var.get("value", ""))
    return None


class K8sTarget:
    """start/status/stop against a Deployment."""

    def __init__(self, config: LoadTestConfig, out: TextIO = sys.stdout) -> None:
        self.config = config
        self.out = out

    def _kubectl(self, state: RunState | None) -> tuple[Kubectl, str]:
        if state is not None:
            return Kubectl(state.kube_context, state.namespace), state.deployment
        cfg = self.config
        return Kubectl(cfg.kube_context, cfg.namespace), cfg.deployment

    def _exec(self, kubectl: Kubectl, deployment: str, *command: str) -> str:
        return kubectl.run("exec", f"deploy/{deployment}", "--", *command)

    def _turn_on(self) -> RunState:
        kubectl, name = self._kubectl(None)
        deployment = json.loads(kubectl.run("get", "deployment", name, "-o", "json"))
        state = RunState(
            "k8s",
            run_id=f"{time.time():.0f}",
            queue="",
            previous_mode=previous_mode(deployment),
            kube_context=self.config.kube_context,
            namespace=self.config.namespace,
            deployment=name,
        )
        # Saved before the change, so stop can restore even if a later step fails.
        save(self.config.state_file, state)
        kubectl.run("set", "env", f"deployment/{name}", f"{BENCHMARK_VAR}=1")
        kubectl.run("rollout", "status", f"deployment/{name}", "--timeout=600s")
        was = "unset" if state.previous_mode is None else repr(state.previous_mode)
        print(f"benchmark mode on for deployment/{name} (was {was})", file=self.out)
        return state

    def start(self, jobs: int) -> int:
        state = load(self.config.state_file) or self._turn_on()
        kubectl, name = self._kubectl(state)
        payload = json.dumps({MARKER: True, "run": state.run_id}, separators=(",", ":"))
        out = self._exec(
            kubectl,
            name,
            *("workflow-worker", "enqueue", WORKFLOW, "--count", str(jobs), "--payload", payload),
        )
        state.pushed += sum(1 for line in out.splitlines() if line.strip())
        save(self.config.state_file, state)
        print(f"pushed {jobs} jobs ({state.pushed} in this run) from deploy/{name}", file=self.out)
        return 0

    def snapshot(self, state: RunState) -> Snapshot:
        kubectl, name = self._kubectl(state)
        stats = json.loads(self._exec(kubectl, name, "workflow-worker", "status", "--json"))
        deployment = json.loads(kubectl.run("get", "deployment", name, "-o", "json"))
        status = deployment.get("status", {})
        workers = stats.get("live_workers", {})
        actives = [w.get("active") for w in workers.values() if isinstance(w, dict)]
        active = sum(int(a) for a in actives if isinstance(a, int)) if actives else None
        remaining = int(stats["queued"]) + int(stats["inflight"]) + int(stats["delayed"])
        context = state.kube_context or "(current context)"
        return Snapshot(
            target="k8s",
            where=f"{context} ns={state.namespace or '(default)'} deploy/{name}",
            queue=str(stats.get("queue", "")),
            pushed=state.pushed,
            done=max(0, state.pushed - remaining),
            queued=int(stats["queued"]),
            inflight=int(stats["inflight"]),
            delayed=int(stats["delayed"]),
            dead=int(stats["dead"]),
            active=active,
            pods=int(status.get("replicas", 0)),
            pods_ready=int(status.get("readyReplicas", 0)),
            pods_desired=int(deployment.get("spec", {}).get("replicas", 0)),
            elapsed=time.time() - state.started_at,
            notes=[f"live workers in Redis: {stats.get('workers', len(workers))}"],
        )

    def _drain(self, kubectl: Kubectl, name: str, timeout: float) -> None:
        dropped = json.loads(self._exec(kubectl, name, "python", "-c", DRAIN_SOURCE, "drop", LUA))
        print(
            f"removed {dropped['dropped_queued']} waiting and {dropped['dropped_delayed']} "
            "delayed load-test jobs",
            file=self.out,
        )
        left = int(dropped["inflight_marked"])
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            time.sleep(2)
            counts = json.loads(self._exec(kubectl, name, "python", "-c", DRAIN_SOURCE, "count"))
            left = int(counts["inflight_marked"])
        if left:
            print(f"{left} load-test jobs still running after {timeout:g}s", file=self.out)

    def stop(self, timeout: float) -> int:
        state = load(self.config.state_file)
        if state is None:
            print("no cluster load test is recorded: nothing to restore", file=self.out)
            return 0
        kubectl, name = self._kubectl(state)
        try:
            self._drain(kubectl, name, timeout)
        except (KubectlError, ValueError, KeyError) as exc:
            print(f"could not drain ({exc}); restoring the mode anyway", file=self.out)
        previous = state.previous_mode
        restore = f"{BENCHMARK_VAR}-" if previous is None else f"{BENCHMARK_VAR}={previous}"
        kubectl.run("set", "env", f"deployment/{name}", restore)
        remove(self.config.state_file)
        was = "unset" if state.previous_mode is None else repr(state.previous_mode)
        print(
            f"restored {BENCHMARK_VAR} ({was}) on deployment/{name}; follow the rollout with "
            f"kubectl rollout status deployment/{name}",
            file=self.out,
        )
        return 0
