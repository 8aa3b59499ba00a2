"""A Kubernetes API server stand-in for one endpoint: PATCH of a pod, over HTTPS, as documented.

No API server runs on the test machines. This one implements the documented contract of
`PATCH /api/v1/namespaces/{namespace}/pods/{name}` closely enough to catch a wrong request:
bearer-token authentication (401), an RBAC rule on the verb, resource and namespace (403), the
patch content types the API accepts (415 otherwise), a JSON object body (400), a missing pod
(404), JSON merge-patch semantics (RFC 7386: objects merge, null deletes), the patched Pod
validated against the real Kubernetes schema by kubernetes-validate (so an annotation value must
be a string; 400 otherwise), the pod-deletion-cost rule of the API's validation (an int32 without
a sign or leading zeros; 422 otherwise), and `Status` objects for every failure. Tests can also
make it fail or hang on purpose.
"""

from __future__ import annotations

import asyncio
import copy
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
from aiohttp import web

__all__ = ["FakeKubeApi", "Recorded", "merge_patch", "serve_tls"]

PATCH_TYPES = (
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/json-patch+json",
)
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
SERVICE_ACCOUNT = "system:serviceaccount:{namespace}:workflow-worker"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _valid_cost(value: str) -> bool:
    """The API server's rule (GetDeletionCostFromPodAnnotations): an int32, no sign, no padding."""
    if not value or not (value[0] == "-" or value == "0" or "1" <= value[0] <= "9"):
        return False
    try:
        return -(2**31) <= int(value) < 2**31
    except ValueError:
        return False


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeKubeApi:
    """Pods by (namespace, name); the token and namespaces the caller's RBAC allows."""

    token: str
    rbac_namespaces: set[str]
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    fail_with: list[int] = field(default_factory=list)
    hang_seconds: float = 0.0

    def add_pod(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        self.pods[(namespace, name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/name": "workflow-worker"},
                "annotations": dict(annotations),
            },
            "spec": {"containers": [{"name": "worker", "image": "workflow-worker:0.1.0"}]},
        }

    def annotation(self, namespace: str, name: str) -> str | None:
        annotations = self.pods[(namespace, name)]["metadata"].get("annotations", {})
        value = annotations.get(DELETION_COST)
        return None if value is None else str(value)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/v1/namespaces/{namespace}/pods/{name}", self._pod)
        return app

    async def _pod(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body))
        if self.hang_seconds:
            await asyncio.sleep(self.hang_seconds)
        if self.fail_with:
            code = self.fail_with.pop(0)
            return _status(code, "InternalError" if code >= 500 else "Injected", "injected")
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        denied = self._authorize(request, namespace, name)
        if denied is not None:
            return denied
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type not in PATCH_TYPES[:2]:
            accepted = ", ".join(PATCH_TYPES)
            return _status(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                f"include: {accepted}",
            )
        return self._apply(namespace, name, body)

    def _authorize(self, request: web.Request, namespace: str, name: str) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        if request.method != "PATCH" or namespace not in self.rbac_namespaces:
            user = SERVICE_ACCOUNT.format(namespace=namespace)
            verb = request.method.lower()
            return _status(
                403,
                "Forbidden",
                f'pods "{name}" is forbidden: User "{user}" cannot {verb} resource "pods" in '
                f'API group "" in the namespace "{namespace}"',
            )
        return None

    def _apply(self, namespace: str, name: str, body: bytes) -> web.Response:
        try:
            patch = json.loads(body)
        except ValueError:
            return _status(400, "BadRequest", "invalid JSON in the patch")
        if not isinstance(patch, dict):
            return _status(400, "BadRequest", "the patch must be a JSON object")
        pod = self.pods.get((namespace, name))
        if pod is None:
            return _status(404, "NotFound", f'pods "{name}" not found')
        patched = merge_patch(pod, patch)
        try:
            kubernetes_validate.validate(patched, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            return _status(400, "BadRequest", f"{'.'.join(map(str, exc.path))}: {exc.message}")
        cost = patched["metadata"].get("annotations", {}).get(DELETION_COST)
        if cost is not None and not _valid_cost(cost):
            return _status(
                422,
                "Invalid",
                f'Pod "{name}" is invalid: metadata.annotations[{DELETION_COST}]: Invalid '
                f'value: "{cost}": must be a 32bit integer',
            )
        self.pods[(namespace, name)] = patched
        return web.json_response(patched)


async def serve_tls(
    api: FakeKubeApi, cert: Path, key: Path, port: int
) -> tuple[web.AppRunner, str]:
    """Serve `api` over HTTPS on 127.0.0.1:`port`; returns the runner and the base URL."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(api.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    return runner, f"https://127.0.0.1:{port}"
