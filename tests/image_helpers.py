"""Build and run the real Dockerfile without a Docker engine: buildah's builder through podman.

No image registry is reachable from the machines the tests run on, so the base image is a Debian
root filesystem made by `mmdebstrap` from Debian's package mirror (cached under
`.tools/image/`, keyed by its package list) and imported into podman. Every podman call uses a
storage root of its own under a temporary folder (`--root`/`--runroot`), so a test leaves no
image, container or layer behind, and two test runs never share state. The tools come from
Debian packages (`scripts/install-tools.sh`); podman runs as root with the `runc` runtime and
cgroupfs, which is what works on hosts with hybrid cgroups (crun refuses them).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BASE_PACKAGES",
    "TOOLS",
    "Podman",
    "base_tarball",
    "missing_tools",
    "podman_session",
]

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".tools" / "image"
TOOLS = ("podman", "buildah", "runc", "mmdebstrap")
SUITE = "bookworm"
# What the Dockerfile's stages need from a base: Python with venv, `python` on PATH,
# groupadd/useradd, and CA certificates for pip.
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "passwd", "ca-certificates")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Building is heavy (apt, pip, layer copies) and runs next to timing-sensitive tests under
# pytest-xdist: it yields the CPU to them.
NICE = ("nice", "-n", "15")
# The test machines' hard limit on open files is below podman's default request.
ULIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096")


def missing_tools() -> list[str]:
    """The container tools that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(
    args: Sequence[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def base_tarball(timeout: float = 900) -> Path:
    """The cached Debian root filesystem tarball, made with mmdebstrap on first use."""
    key = hashlib.sha256(f"{SUITE} {' '.join(BASE_PACKAGES)}".encode()).hexdigest()[:12]
    target = CACHE / f"debian-{SUITE}-python-{key}.tar"
    CACHE.mkdir(parents=True, exist_ok=True)
    # Two test runs of one checkout must not both write the tarball.
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            partial = target.with_suffix(".partial.tar")
            _run(
                [
                    *NICE, "mmdebstrap", "--variant=minbase",
                    "--include=" + ",".join(BASE_PACKAGES), SUITE, str(partial),
                ],
                timeout,
            )  # fmt: skip
            partial.rename(target)
    return target


@dataclass
class Podman:
    """podman with its storage, run state and temporary files under one folder of its own."""

    home: Path

    def base_args(self) -> list[str]:
        return [
            "podman",
            "--root", str(self.home / "storage"),
            "--runroot", str(self.home / "run"),
            "--tmpdir", str(self.home / "libpod-tmp"),
            "--storage-driver", "overlay",
            "--runtime", "runc",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        # buildah stages large files in TMPDIR (/var/tmp by default): keep them in our folder.
        tmp = self.home / "tmp"
        tmp.mkdir(exist_ok=True)
        return {**os.environ, "TMPDIR": str(tmp)}

    def __call__(
        self, *args: str, timeout: float = 60, nice: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run one podman command; fail with its output when it exits non-zero."""
        prefix = list(NICE) if nice else []
        return _run([*prefix, *self.base_args(), *args], timeout, self.env())

    def try_(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run one podman command and return whatever it did."""
        return subprocess.run(
            [*self.base_args(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start one podman command in the background."""
        return subprocess.Popen(
            [*self.base_args(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )

    def import_base(self, tarball: Path, tag: str) -> None:
        """Turn a root filesystem tarball into a local image."""
        self("import", "--change", 'CMD ["python3"]', str(tarball), tag, timeout=180, nice=True)

    def build(self, context: Path, tag: str, build_args: dict[str, str], timeout: float) -> float:
        """Build `context`'s Dockerfile the way CI would, with pip trusting this machine's CA
        bundle through the Dockerfile's build secrets; returns the seconds it took."""
        pip_conf = self.home / "pip.conf"
        pip_conf.write_text("[global]\ncert = /run/secrets/pip-ca\n")
        args = ["build", "--isolation=chroot", "--pull=never", "--network=host", "--layers=false"]
        for name, value in build_args.items():
            args += ["--build-arg", f"{name}={value}"]
        args += ["--secret", f"id=pip-conf,src={pip_conf}", "--secret", f"id=pip-ca,src={HOST_CA}"]
        started = time.monotonic()
        self(*args, "-t", tag, str(context), timeout=timeout, nice=True)
        return time.monotonic() - started

    def run_detached(self, image: str, name: str, env: dict[str, str]) -> None:
        """Start a container locked down as the chart runs the pod: read-only root filesystem with
        a writable /tmp only, no capabilities, no privilege escalation, the image's own user."""
        args = [
            "run", "--detach", "--name", name, "--network", "host",
            "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=64m",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges", *ULIMITS,
        ]  # fmt: skip
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        self(*args, image, timeout=60)

    def exec_(self, name: str, *command: str) -> subprocess.CompletedProcess[str]:
        """Run a command inside a running container (as the image's user)."""
        return self.try_("exec", name, *command, timeout=30)


def _cleanup(podman: Podman) -> None:
    """Remove every container and image, then the folder itself."""
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        podman.try_("rm", "--all", "--force", "--time", "0", timeout=60)
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        podman.try_("rmi", "--all", "--force", timeout=120)
    # Whatever podman left mounted (a crash mid-build) must go before the folder can.
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    inside = [line.split()[1] for line in mounts if line.split()[1].startswith(str(podman.home))]
    for mount in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False, timeout=30)
    shutil.rmtree(podman.home, ignore_errors=True)


@contextlib.contextmanager
def podman_session() -> Iterator[Podman]:
    """A Podman whose folder (about 1.5 GB while it lives) is removed at the end, whatever
    happens: not under pytest's tmp_path, which keeps the last runs' folders around."""
    podman = Podman(Path(tempfile.mkdtemp(prefix="wfw-podman-")))
    try:
        yield podman
    finally:
        _cleanup(podman)
