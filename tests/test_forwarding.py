"""Token forwarding: ForwardedBearer with requests and httpx, and service A -> service B."""

from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
import requests
from _uvicorn import serve
from conftest import MakeVerifier
from fastapi import Depends, FastAPI, HTTPException
from tokenward.fastapi import Authenticator, User
from tokenward.forwarding import ForwardedBearer
from tokenward.testing import DevIdP

TIMEOUT = 10


# ---- ForwardedBearer -----------------------------------------------------------------------------


def test_sets_the_header_on_a_requests_request() -> None:
    prepared = requests.Request("GET", "http://127.0.0.1/x", auth=ForwardedBearer("abc")).prepare()
    assert prepared.headers["Authorization"] == "Bearer abc"


def test_sets_the_header_through_httpx_auth_flow() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(204)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=ForwardedBearer("t1")) as c:
        c.get("http://service.test/")
    assert seen == ["Bearer t1"]


async def test_sets_the_header_with_an_async_httpx_client() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await client.get("http://service.test/", auth=ForwardedBearer("t2"))
    assert seen == ["Bearer t2"]


def test_token_is_hidden_and_validated() -> None:
    bearer = ForwardedBearer(" s3cr3t-value ")
    assert bearer.token == "s3cr3t-value"
    assert bearer.headers == {"Authorization": "Bearer s3cr3t-value"}
    assert "s3cr3t" not in repr(bearer)
    assert bearer == ForwardedBearer("s3cr3t-value")
    assert len({bearer, ForwardedBearer("s3cr3t-value")}) == 1
    for bad in ("", "   ", "a\r\nX-Evil: 1", "a b"):
        with pytest.raises(ValueError):
            ForwardedBearer(bad)
    with pytest.raises(TypeError):
        ForwardedBearer(b"bytes")  # type: ignore[arg-type]


# ---- service A -> service B ----------------------------------------------------------------------


def make_service_b(auth: Authenticator, seen: list[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(user: Annotated[User, Depends(auth.user)]) -> dict[str, Any]:
        seen.append(user.uid)
        return {"uid": user.uid, "username": user.username, "jti": user.claims["jti"]}

    return app


def make_service_a(auth: Authenticator, service_b: str) -> FastAPI:
    app = FastAPI()

    @app.get("/relay-async")
    async def relay_async(
        user: Annotated[User, Depends(auth.user)],
        bearer: Annotated[ForwardedBearer, Depends(auth.forwarded)],
    ) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.get(f"{service_b}/whoami", auth=bearer)
        if response.status_code != 200:
            raise HTTPException(502, detail=f"service B answered {response.status_code}")
        return {"a": user.uid, "b": response.json()}

    @app.get("/relay-sync")
    def relay_sync(user: Annotated[User, Depends(auth.user)]) -> dict[str, Any]:
        # A sync endpoint (run in the thread pool) using requests and User.bearer.
        response = requests.get(f"{service_b}/whoami", auth=user.bearer, timeout=TIMEOUT)
        response.raise_for_status()
        return {"a": user.uid, "b": response.json()}

    return app


@pytest.fixture
def services(make_verifier: MakeVerifier) -> Iterator[tuple[str, list[str]]]:
    """Service A (its own verifier) in front of service B (another verifier), both on the
    DevIdP; yields A's URL and the uids B has served."""
    seen_by_b: list[str] = []
    auth_b = Authenticator(make_verifier(), allowlist=False)
    auth_a = Authenticator(make_verifier(), allowlist=False)
    with (
        serve(make_service_b(auth_b, seen_by_b)) as b_url,
        serve(make_service_a(auth_a, b_url)) as a_url,
    ):
        yield a_url, seen_by_b


@pytest.mark.parametrize("path", ["/relay-async", "/relay-sync"])
def test_the_same_user_reaches_service_b(
    services: tuple[str, list[str]], dev_idp: DevIdP, path: str
) -> None:
    a_url, seen_by_b = services
    claims = dev_idp.make_claims(sub="user-7", preferred_username="grace")
    token = dev_idp.sign_claims(claims)
    response = requests.get(
        f"{a_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "a": "user-7",
        "b": {"uid": "user-7", "username": "grace", "jti": claims["jti"]},
    }
    assert seen_by_b == ["user-7"]


def test_an_unverified_token_is_never_forwarded(
    services: tuple[str, list[str]], dev_idp: DevIdP, evil_idp: DevIdP
) -> None:
    a_url, seen_by_b = services
    for token in ("garbage", dev_idp.mint(expires_in=-3600), evil_idp.mint(sub="user-7")):
        response = requests.get(
            f"{a_url}/relay-async", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )
        assert response.status_code == 401
    assert requests.get(f"{a_url}/relay-async", timeout=TIMEOUT).status_code == 401
    assert seen_by_b == []
