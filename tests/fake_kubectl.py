"""A stand-in for `kubectl` in the load-test tests: the cluster path cannot run on this machine.

It appends its argv (as one JSON line) to $FAKE_KUBECTL_LOG, answers `get deployment -o json` from
the JSON file $FAKE_KUBECTL_DEPLOYMENT, applies `set env deployment/NAME VAR=value | VAR-` to that
file (so a test can check the restore), prints rollout success, and runs the command after `--`
of `exec` on this machine, where REDIS_URL points at the test's Redis, as it would in the pod.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

GLOBAL_FLAGS = ("--context", "--namespace", "-n")


def _strip_globals(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in GLOBAL_FLAGS:
            skip = True
        else:
            out.append(arg)
    return out


def _set_env(deployment: dict[str, Any], assignments: list[str]) -> None:
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        env: list[dict[str, str]] = container.setdefault("env", [])
        for item in assignments:
            if item.endswith("-"):
                env[:] = [v for v in env if v["name"] != item[:-1]]
                continue
            name, _, value = item.partition("=")
            for var in env:
                if var["name"] == name:
                    var["value"] = value
                    break
            else:
                env.append({"name": name, "value": value})


def main(argv: list[str]) -> int:
    with Path(os.environ["FAKE_KUBECTL_LOG"]).open("a") as log:
        log.write(json.dumps(argv) + "\n")
    args = _strip_globals(argv)
    store = Path(os.environ["FAKE_KUBECTL_DEPLOYMENT"])
    deployment = json.loads(store.read_text())
    name = deployment["metadata"]["name"]
    if args[:2] == ["get", "deployment"] and args[2] == name:
        print(json.dumps(deployment))
        return 0
    if args[:2] == ["set", "env"] and args[2] == f"deployment/{name}":
        _set_env(deployment, args[3:])
        store.write_text(json.dumps(deployment, indent=2))
        print(f"deployment.apps/{name} env updated")
        return 0
    if args[:2] == ["rollout", "status"]:
        print(f'deployment "{name}" successfully rolled out')
        return 0
    if args[:2] == ["exec", f"deploy/{name}"] and args[2] == "--":
        return subprocess.run(args[3:], check=False).returncode
    print(f"fake kubectl: unexpected call {argv}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
