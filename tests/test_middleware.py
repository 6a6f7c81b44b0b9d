"""tokenward.middleware.BearerAuthMiddleware over real HTTP (uvicorn on 127.0.0.1): the same
answers as the Authenticator's dependencies, one verification per request, WebSockets."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import pytest
import requests
import tokenward.fastapi as twf
from _helpers import with_claims
from _uvicorn import serve
from conftest import MakeVerifier
from fastapi import Depends, FastAPI, WebSocket
from starlette.requests import Request
from tokenward.fastapi import Authenticator, User, request_path
from tokenward.middleware import BearerAuthMiddleware
from tokenward.testing import DevIdP
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

TIMEOUT = 10


def get(url: str, authorization: str | None = None) -> requests.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return requests.get(url, headers=headers, timeout=TIMEOUT)


def protected_app(auth: Authenticator | None) -> FastAPI:
    """Protected by the middleware only: no route declares an auth dependency unless it wants
    the identity."""
    app = FastAPI()
    app.add_middleware(BearerAuthMiddleware, authenticator=auth)

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"plain": "yes"}

    @app.get("/me")
    async def me(
        user: Annotated[User, Depends(auth.user if auth else twf.get_current_user)],
    ) -> Any:
        return {"uid": user.uid, "roles": list(user.roles)}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        identity = websocket.scope["state"]["_tokenward_identities"]
        ((claims, _token),) = identity.values()
        await websocket.send_text(claims["sub"])
        await websocket.close()

    return app


class CountingVerifier:
    """The fixture's verifier, counting the tokens it is asked to verify."""

    def __init__(self, verifier: Any) -> None:
        self.inner = verifier
        self.issuer = verifier.issuer
        self.calls = 0

    async def verify_async(self, token: str) -> dict[str, Any]:
        self.calls += 1
        return await self.inner.verify_async(token)  # type: ignore[no-any-return]


@pytest.fixture
def counting(make_verifier: MakeVerifier) -> CountingVerifier:
    return CountingVerifier(make_verifier())


@pytest.fixture
def auth(counting: CountingVerifier) -> Authenticator:
    return Authenticator(
        counting,  # type: ignore[arg-type]
        exempt_paths={"/health"},
        role_clients=["fred-app"],
        allowlist=False,
    )


@pytest.fixture
def base_url(auth: Authenticator) -> Iterator[str]:
    with serve(protected_app(auth)) as url:
        yield url


def test_a_valid_token_reaches_the_route_verified_once(
    base_url: str, dev_idp: DevIdP, counting: CountingVerifier
) -> None:
    token = dev_idp.mint(sub="u7", resource_access={"fred-app": {"roles": ["editor"]}})
    response = get(f"{base_url}/me", f"Bearer {token}")
    assert response.status_code == 200, response.text
    assert response.json() == {"uid": "u7", "roles": ["editor"]}
    # the middleware verified; the route's `auth.user` dependency found the identity
    assert counting.calls == 1
    assert get(f"{base_url}/plain", f"Bearer {token}").json() == {"plain": "yes"}
    assert counting.calls == 2


def test_every_route_is_refused_without_a_token(
    base_url: str, dev_idp: DevIdP, counting: CountingVerifier
) -> None:
    for path in ("/plain", "/me", "/no-such-route"):
        response = get(f"{base_url}{path}")
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"detail": "Not authenticated"}
    assert get(f"{base_url}/plain", "Basic dXNlcjpwYXNzd29yZA==").status_code == 401
    assert counting.calls == 0 and dev_idp.hits["jwks"] == 0


@pytest.mark.parametrize(
    ("make", "description"),
    [
        (lambda idp: "Bearer ", "The bearer token is empty"),
        (lambda idp: "Bearer not-a-jwt", "The token is malformed"),
        (lambda idp: f"Bearer {idp.mint(expires_in=-3600)}", "The token has expired"),
        (
            lambda idp: f"Bearer {with_claims(idp.mint(), sub='x')}",
            "The token signature is invalid",
        ),
        (lambda idp: f"Bearer {idp.mint(typ='Refresh')}", "The token is not an access token"),
    ],
    ids=["empty", "malformed", "expired", "bad_signature", "refresh"],
)
def test_rejected_tokens_get_the_rfc6750_challenge(
    base_url: str, dev_idp: DevIdP, make: Any, description: str
) -> None:
    response = get(f"{base_url}/plain", make(dev_idp))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer error="invalid_token", error_description="{description}"'
    )
    assert response.json() == {"detail": description}


def test_exempt_path_passes_untouched(base_url: str, counting: CountingVerifier) -> None:
    assert get(f"{base_url}/health").json() == {"ok": True}
    assert get(f"{base_url}/health?probe=1").json() == {"ok": True}
    # a bad token on an exempt path is not looked at either
    assert get(f"{base_url}/health", "Bearer not-a-jwt").status_code == 200
    assert counting.calls == 0
    # exact match only
    assert get(f"{base_url}/health/").status_code == 401
    assert get(f"{base_url}/Health").status_code == 401


@pytest.mark.parametrize(
    "path", ["/health", "/a b/é", "/q?x", "/frag#x", "/back\\slash", "/%3F", "/"]
)
def test_request_path_is_starlettes_url_path(path: str) -> None:
    scope = {"type": "http", "path": path, "query_string": b"a=1", "headers": [], "root_path": ""}
    assert request_path(scope) == Request(scope).url.path


def test_no_keys_is_503_and_unconfigured_is_500(
    make_verifier: MakeVerifier, dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev_idp.set_fault("jwks", "500")
    auth = Authenticator(make_verifier(), retry_after=9, allowlist=False)
    with serve(protected_app(auth)) as url:
        response = get(f"{url}/plain", f"Bearer {dev_idp.mint()}")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "9"
    assert response.json() == {"detail": "Token signing keys are unavailable; try again later"}

    monkeypatch.delenv("KEYCLOAK_URL", raising=False)
    unconfigured = Authenticator(exempt_paths={"/health"}, allowlist=False)
    with serve(protected_app(unconfigured)) as url:
        response = get(f"{url}/plain", "Bearer abc")
        assert response.status_code == 500
        assert response.json() == {"detail": "Authentication is not configured"}
        assert get(f"{url}/health").status_code == 200


def test_allowlist_refusal_is_403(
    make_verifier: MakeVerifier, dev_idp: DevIdP, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowlist.txt"
    allowed.write_text("alice@example.org\n")
    auth = Authenticator(make_verifier(), allowlist=allowed)
    with serve(protected_app(auth)) as url:
        ok = get(f"{url}/plain", f"Bearer {dev_idp.mint(email='Alice@Example.org')}")
        assert ok.status_code == 200
        refused = get(f"{url}/plain", f"Bearer {dev_idp.mint(email='mallory@example.org')}")
        assert refused.status_code == 403
        assert refused.json() == {"detail": "user_not_whitelisted"}


def test_default_authenticator_and_module_level_dependencies(
    make_verifier: MakeVerifier, dev_idp: DevIdP
) -> None:
    saved = twf._default
    try:
        counting = CountingVerifier(make_verifier())
        twf.configure(counting, exempt_paths={"/health"}, allowlist=False)  # type: ignore[arg-type]
        with serve(protected_app(None)) as url:
            assert get(f"{url}/health").status_code == 200
            assert get(f"{url}/plain").status_code == 401
            response = get(f"{url}/me", f"Bearer {dev_idp.mint(sub='d1')}")
            assert response.json() == {"uid": "d1", "roles": []}
        assert counting.calls == 1
    finally:
        twf._default = saved


def test_lifespan_passes_through(auth: Authenticator) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(BearerAuthMiddleware, authenticator=auth)
    with serve(app) as url:
        assert events == ["startup"]
        assert get(f"{url}/anything").status_code == 401
    assert events == ["startup", "shutdown"]


def test_websocket_handshake_needs_a_token(base_url: str, dev_idp: DevIdP) -> None:
    ws_url = base_url.replace("http://", "ws://") + "/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(ws_url, additional_headers={"Authorization": "Bearer x"}, open_timeout=TIMEOUT)
    token = dev_idp.mint(sub="ws1")
    with connect(
        ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=TIMEOUT
    ) as ws:
        assert ws.recv(timeout=TIMEOUT) == "ws1"
