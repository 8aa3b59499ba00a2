"""Keep this pod's deletion cost equal to the jobs it runs, so scale-in removes idle pods first.

When a ReplicaSet scales in it deletes the pods with the lowest
`controller.kubernetes.io/pod-deletion-cost` annotation first (Kubernetes 1.22+, on by default).
The HPA that KEDA drives only decides how many pods go; without a cost, the ReplicaSet may pick a
pod running 50 workflows (which then drains for up to the shutdown timeout) while an idle one
stays. With `WORKER_POD_DELETION_COST=1` each worker PATCHes its own pod's annotation to its
running-job count, through the API server's documented contract:

    PATCH /api/v1/namespaces/{namespace}/pods/{name}
    Authorization: Bearer <service-account token>
    Content-Type: application/merge-patch+json
    {"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "12"}}}

At most one PATCH per `WORKER_POD_DELETION_COST_INTERVAL` seconds, and only when the count
changed since the last accepted one (Kubernetes asks callers not to update the annotation often:
every update is a pod write that every pod watcher receives). Failures are logged, counted in
`workflow_pod_deletion_cost_errors_total{reason}` and retried at the next interval; nothing here
ever raises into the worker or its jobs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge

from workflow_worker.errors import ConfigError
from workflow_worker.settings import Settings

__all__ = ["ANNOTATION", "SERVICE_ACCOUNT_DIR", "PodDeletionCost", "PodTarget"]

log = logging.getLogger("workflow_worker.podcost")

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
PATCH_CONTENT_TYPE = "application/merge-patch+json"
REQUEST_TIMEOUT = 5.0
# The annotation is an int32 on the API side.
_MAX_COST = 2**31 - 1
_REASONS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    422: "invalid",
    429: "throttled",
}


@dataclass(frozen=True, slots=True)
class PodTarget:
    """Where the annotation goes and with which credentials."""

    api_url: str
    namespace: str
    pod: str
    token_file: Path
    ca_file: Path
    interval: float

    @property
    def path(self) -> str:
        namespace, pod = quote(self.namespace, safe=""), quote(self.pod, safe="")
        return f"/api/v1/namespaces/{namespace}/pods/{pod}"

    @classmethod
    def from_settings(cls, settings: Settings, account_dir: Path | None = None) -> PodTarget:
        """The in-cluster target (the service account mounted at `account_dir`, by default
        `SERVICE_ACCOUNT_DIR`); `ConfigError` names what is missing."""
        # Looked up at call time, not bound as a default, so the module's path is the one used.
        account_dir = account_dir or SERVICE_ACCOUNT_DIR
        for name in ("token", "ca.crt"):
            if not (account_dir / name).is_file():
                raise ConfigError(
                    "WORKER_POD_DELETION_COST",
                    "1",
                    f"a mounted service-account token: {account_dir / name} is missing "
                    "(the chart mounts it with podDeletionCost.enabled=true)",
                )
        namespace = settings.pod_namespace
        if not namespace and (account_dir / "namespace").is_file():
            namespace = (account_dir / "namespace").read_text().strip()
        if not namespace:
            raise ConfigError(
                "POD_NAMESPACE", "", "the pod's namespace (downward API metadata.namespace)"
            )
        host = settings.kubernetes_service_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return cls(
            api_url=f"https://{host}:{settings.kubernetes_service_port}",
            namespace=namespace,
            pod=settings.pod_name,
            token_file=account_dir / "token",
            ca_file=account_dir / "ca.crt",
            interval=settings.pod_deletion_cost_interval,
        )


class PodDeletionCost:
    """A loop that mirrors `running()` into this pod's deletion-cost annotation."""

    def __init__(
        self,
        running: Callable[[], int],
        target: PodTarget,
        registry: CollectorRegistry,
        *,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.running = running
        self.target = target
        self.request_timeout = request_timeout
        self.last_sent: int | None = None
        self._last_error = ""
        self.cost = Gauge(
            "workflow_pod_deletion_cost",
            "The pod-deletion-cost annotation the API server last accepted for this pod.",
            registry=registry,
        )
        self.updates = Counter(
            "workflow_pod_deletion_cost_updates",
            "Accepted PATCHes of this pod's deletion-cost annotation.",
            registry=registry,
        )
        self.errors = Counter(
            "workflow_pod_deletion_cost_errors",
            "Failed PATCHes of this pod's deletion-cost annotation, by reason.",
            ["reason"],
            registry=registry,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        running: Callable[[], int],
        registry: CollectorRegistry,
        account_dir: Path | None = None,
    ) -> PodDeletionCost | None:
        """The loop when `WORKER_POD_DELETION_COST` is on, else None; raises `ConfigError` at
        start-up when the pod's identity or its service-account token is missing."""
        if not settings.pod_deletion_cost:
            return None
        return cls(running, PodTarget.from_settings(settings, account_dir), registry)

    def start(self) -> asyncio.Task[None]:
        """Run the loop as a task of its own (cancel it to stop)."""
        return asyncio.create_task(self.run(), name="pod-deletion-cost")

    async def run(self) -> None:
        """Sync, then wait one interval, until cancelled. Never raises anything else."""
        context = ssl.create_default_context(cafile=str(self.target.ca_file))
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    await self.sync_once(session, context)
                except Exception:  # a bug here must not end the loop, let alone the worker
                    log.exception("pod deletion cost: unexpected error")
                await asyncio.sleep(self.target.interval)

    async def sync_once(self, session: aiohttp.ClientSession, context: ssl.SSLContext) -> bool:
        """PATCH the annotation if the running-job count changed; True when one was accepted."""
        value = max(0, min(int(self.running()), _MAX_COST))
        if value == self.last_sent:
            return False
        reason = await self._patch(session, context, value)
        if reason is None:
            self.last_sent = value
            self.cost.set(value)
            self.updates.inc()
            if self._last_error:
                log.info("pod deletion cost: updates work again")
                self._last_error = ""
            return True
        self.errors.labels(reason).inc()
        # One warning per kind of failure, not one per interval while it lasts.
        level = logging.DEBUG if reason == self._last_error else logging.WARNING
        log.log(level, "pod deletion cost: PATCH failed (%s); retrying later", reason)
        self._last_error = reason
        return False

    async def _patch(
        self, session: aiohttp.ClientSession, context: ssl.SSLContext, value: int
    ) -> str | None:
        """Send one PATCH; None on success, else the bounded reason for the metric."""
        try:
            # Bound service-account tokens are rotated by the kubelet: read the file each time.
            token = self.target.token_file.read_text().strip()
        except OSError:
            return "token"
        body = json.dumps({"metadata": {"annotations": {ANNOTATION: str(value)}}})
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": PATCH_CONTENT_TYPE,
            "Accept": "application/json",
        }
        url = self.target.api_url + self.target.path
        try:
            async with session.patch(url, data=body, headers=headers, ssl=context) as resp:
                await resp.read()
                if resp.status == 200:
                    return None
                return _REASONS.get(resp.status, "server_error" if resp.status >= 500 else "other")
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientSSLError:
            return "tls"
        except (aiohttp.ClientError, OSError):
            return "connection"
