"""Who may use the console, and proof that an action comes from the console's own page.

Credentials: a token (`Authorization: Bearer`, or typed once into the login page), basic-auth
user and password, or nobody at all only when `WORKER_CONSOLE_ANONYMOUS=1` says so. A browser
that proves itself gets a session cookie (HttpOnly, SameSite=Strict); every session carries its
own CSRF token, which each action must send back (a form field or `X-CSRF-Token`). Requests that
carry the token in a Bearer header need none: a browser never adds that header by itself.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

from workflow_worker.errors import ConfigError
from workflow_worker.settings import Settings

__all__ = [
    "COOKIE",
    "Auth",
    "Session",
    "Sessions",
    "check_auth_settings",
]

COOKIE = "wwc_session"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000
CSRF_HEADER = "X-CSRF-Token"


def check_auth_settings(settings: Settings) -> None:
    """Refuse to start a console anyone could use by accident; the error names the setting."""
    if settings.console_username and not settings.console_password:
        raise ConfigError(
            "WORKER_CONSOLE_PASSWORD", None, reason="WORKER_CONSOLE_USERNAME is set without it"
        )
    if settings.console_password and not settings.console_username:
        raise ConfigError(
            "WORKER_CONSOLE_USERNAME", None, reason="WORKER_CONSOLE_PASSWORD is set without it"
        )
    if settings.console_anonymous or settings.console_token or settings.console_password:
        return
    raise ConfigError(
        "WORKER_CONSOLE_TOKEN",
        None,
        reason=(
            "it is not set, and the console allows no anonymous access: set it (16 characters "
            "or more), or WORKER_CONSOLE_USERNAME and WORKER_CONSOLE_PASSWORD, or "
            "WORKER_CONSOLE_ANONYMOUS=1 to allow access without credentials"
        ),
    )


@dataclass(slots=True)
class Session:
    id: str
    csrf: str
    expires: float


class Sessions:
    """Sessions of this process, in memory (one console replica; a restart logs users out)."""

    def __init__(self) -> None:
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def new(self) -> Session:
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time() + SESSION_SECONDS
        )
        self._by_id[session.id] = session
        while len(self._by_id) > MAX_SESSIONS:
            self._by_id.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None or session.expires < time.time():
            self._by_id.pop(session_id, None)
            return None
        return session

    def end(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)


def _same(given: str, expected: str | None) -> bool:
    """Constant-time comparison, so timing does not reveal how much of a secret matched."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class Auth:
    """The console's credentials and sessions."""

    def __init__(self, settings: Settings) -> None:
        check_auth_settings(settings)
        self.token = settings.console_token
        self.username = settings.console_username
        self.password = settings.console_password
        self.anonymous = settings.console_anonymous
        self.read_only = settings.console_read_only
        self.secure_cookies = settings.console_secure_cookies
        self.sessions = Sessions()

    @property
    def basic(self) -> bool:
        return bool(self.username and self.password)

    def check_token(self, token: str) -> bool:
        return _same(token, self.token)

    def check_basic(self, username: str, password: str) -> bool:
        # Both are compared, always: no early exit on a wrong user name.
        user_ok = _same(username, self.username)
        password_ok = _same(password, self.password)
        return user_ok and password_ok

    def from_header(self, header: str) -> str | None:
        """ "bearer" or "basic" when the Authorization header holds valid credentials."""
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.check_token(value.strip()):
            return "bearer"
        if scheme == "basic" and self.basic:
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            username, sep, password = decoded.partition(":")
            if sep and self.check_basic(username, password):
                return "basic"
        return None

    def set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            session.id,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="Strict",
            secure=self.secure_cookies,
            path="/",
        )

    def csrf_ok(self, session: Session | None, given: str) -> bool:
        return session is not None and _same(given, session.csrf)
