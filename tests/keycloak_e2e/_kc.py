"""Helpers of the Keycloak suite: the server's addresses, user tokens, the Admin REST API, a
SmartEM-style backend that records what it saw, and bounded waits.

The realm `dls` and its clients, users and secrets are described in tests/keycloak/README.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from _helpers import header_of
from fastapi import Depends, FastAPI, Request, Response
from tokenward.smartem import verify_token

#: Seconds any single HTTP call of the tests may take.
HTTP_TIMEOUT = 10.0

REALM = "dls"
AGENT_ID, AGENT_SECRET = "SmartEM_Agent", "dev-agent-secret"
SHORT_AGENT_ID, SHORT_AGENT_SECRET = "SmartEM_Agent_Short", "dev-agent-short-secret"
SHORT_TOKEN_LIFETIME = 15  # seconds: SmartEM_Agent_Short's access.token.lifespan
JWT_AGENT_ID, JWT_AGENT_KID = "tokenward-jwt-agent", "tokenward-jwt-agent-1"
ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET = "tokenward-admin", "dev-admin-secret"
USER_CLIENT_ID = "tokenward-test"  # public, password grant
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw"}


@dataclass(frozen=True)
class Keycloak:
    """A running Keycloak (base URL `http://127.0.0.1:<port>`) and the realm under test."""

    url: str
    realm: str = REALM

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{self.realm}"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    @property
    def admin_url(self) -> str:
        return f"{self.url}/admin/realms/{self.realm}"

    def published_kids(self) -> set[str]:
        """The kids of the signing keys in the realm's JWKS now."""
        keys = httpx.get(self.jwks_uri, timeout=HTTP_TIMEOUT).raise_for_status().json()["keys"]
        return {key["kid"] for key in keys if key.get("use", "sig") == "sig"}

    def user_tokens(self, username: str, scope: str = "openid") -> dict[str, Any]:
        """The token response of a password grant for `username` on the test-only client:
        access_token, and with scope `openid` also id_token and refresh_token."""
        response = httpx.post(
            self.token_url,
            data={
                "grant_type": "password",
                "client_id": USER_CLIENT_ID,
                "username": username,
                "password": PASSWORDS[username],
                "scope": scope,
            },
            timeout=HTTP_TIMEOUT,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def admin(self) -> httpx.Client:
        """An httpx client for `/admin/realms/<realm>` as the master realm's administrator."""
        return httpx.Client(
            base_url=self.admin_url, auth=MasterAdminAuth(self.url), timeout=HTTP_TIMEOUT
        )


class MasterAdminAuth(httpx.Auth):
    """The bootstrap administrator (admin/admin, client admin-cli of the master realm). A new
    token for each request: the suite makes a handful of admin calls, and master tokens live
    only 60 s. (tokenward's TokenClient does client credentials, not the password grant.)"""

    def __init__(self, url: str) -> None:
        self.token_url = f"{url}/realms/master/protocol/openid-connect/token"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        response = httpx.post(
            self.token_url,
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": "admin",
                "password": "admin",
            },
            timeout=HTTP_TIMEOUT,
        )
        response.raise_for_status()
        request.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield request


# ---- a SmartEM-style backend -------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request as the backend saw it: the answer's status and the bearer token (if any)."""

    status: int
    token: str | None

    @property
    def kid(self) -> str | None:
        return header_of(self.token)["kid"] if self.token else None


@dataclass
class Recorder:
    """What a backend answered, request by request (thread-safe)."""

    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: Seen) -> None:
        with self.lock:
            self.seen.append(item)

    def snapshot(self) -> list[Seen]:
        with self.lock:
            return list(self.seen)


def smartem_backend(recorder: Recorder) -> FastAPI:
    """SmartEM's backend shape: `verify_token` app-wide (configured from the environment or
    `tokenward.smartem.set_verifier`), `/health` exempt, `/api/whoami` echoing the caller."""
    app = FastAPI(dependencies=[Depends(verify_token)])

    @app.middleware("http")
    async def record(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        header = request.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else None
        recorder.add(Seen(response.status_code, token or None))
        return response

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/whoami")
    async def whoami(claims: Annotated[dict[str, Any], Depends(verify_token)]) -> dict[str, Any]:
        return {key: claims.get(key) for key in ("sub", "azp", "jti", "preferred_username")}

    return app


# ---- waiting ------------------------------------------------------------------------------------

_pause = threading.Event()  # never set: wait(t) is a pause that reads as one


def pause(seconds: float) -> None:
    """Pace a loop (never to wait for a race: use `wait_until` on an observable for that)."""
    _pause.wait(seconds)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        pause(0.1)
