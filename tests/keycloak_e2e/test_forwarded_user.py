"""A user's token forwarded from service A to service B (both FastAPI on uvicorn, each with its
own verifier for the resource server `app`) is accepted by B as the same user."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations, and they
# name dependencies local to a fixture.
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
import requests
import tokenward as tw
from _helpers import claims_of
from _uvicorn import serve
from fastapi import Depends, FastAPI, HTTPException
from tokenward.fastapi import Authenticator, User
from tokenward.forwarding import ForwardedBearer

from ._kc import AGENT_ID, AGENT_SECRET, HTTP_TIMEOUT, Keycloak

pytestmark = pytest.mark.keycloak


def authenticator(keycloak: Keycloak) -> Authenticator:
    return Authenticator(
        tw.Verifier(keycloak.issuer, audience="app"), role_clients=["app"], allowlist=False
    )


def identity(user: User) -> dict[str, Any]:
    return {"sub": user.uid, "username": user.username, "jti": user.claims["jti"]}


@pytest.fixture(scope="module")
def services(keycloak: Keycloak) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Service A's URL, and the identities service B has served."""
    seen_by_b: list[dict[str, Any]] = []
    auth_a, auth_b = authenticator(keycloak), authenticator(keycloak)

    b = FastAPI()

    @b.get("/whoami")
    async def whoami(user: Annotated[User, Depends(auth_b.user)]) -> dict[str, Any]:
        seen_by_b.append(identity(user))
        return {**identity(user), "roles": list(user.roles)}

    def service_a(b_url: str) -> FastAPI:
        a = FastAPI()

        @a.get("/relay-async")
        async def relay_async(
            user: Annotated[User, Depends(auth_a.user)],
            bearer: Annotated[ForwardedBearer, Depends(auth_a.forwarded)],
        ) -> dict[str, Any]:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
                answer = await client.get(f"{b_url}/whoami", auth=bearer)
            if answer.status_code != 200:
                raise HTTPException(502, detail=f"service B answered {answer.status_code}")
            return {"a": identity(user), "b": answer.json()}

        @a.get("/relay-sync")
        def relay_sync(user: Annotated[User, Depends(auth_a.user)]) -> dict[str, Any]:
            answer = requests.get(f"{b_url}/whoami", auth=user.bearer, timeout=HTTP_TIMEOUT)
            if answer.status_code != 200:
                raise HTTPException(502, detail=f"service B answered {answer.status_code}")
            return {"a": identity(user), "b": answer.json()}

        return a

    with serve(b) as b_url, serve(service_a(b_url)) as a_url:
        yield a_url, seen_by_b


@pytest.mark.parametrize("path", ["/relay-async", "/relay-sync"])
def test_the_same_user_reaches_service_b(
    keycloak: Keycloak, services: tuple[str, list[dict[str, Any]]], path: str
) -> None:
    a_url, seen_by_b = services
    token = keycloak.user_tokens("bob")["access_token"]
    claims = claims_of(token)
    seen_by_b.clear()
    answer = requests.get(
        f"{a_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT
    )
    assert answer.status_code == 200, answer.text
    expected = {"sub": claims["sub"], "username": "bob", "jti": claims["jti"]}
    assert answer.json() == {"a": expected, "b": {**expected, "roles": answer.json()["b"]["roles"]}}
    assert "editor" in answer.json()["b"]["roles"]
    assert seen_by_b == [expected]


def test_a_token_for_another_audience_is_not_forwarded(
    keycloak: Keycloak, services: tuple[str, list[dict[str, Any]]]
) -> None:
    """An agent token (aud "account", not "app") stops at service A."""
    a_url, seen_by_b = services
    seen_by_b.clear()
    token = tw.TokenClient(
        keycloak.token_url, client_id=AGENT_ID, client_secret=AGENT_SECRET
    ).get_token()
    answer = requests.get(
        f"{a_url}/relay-async", headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT
    )
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    assert seen_by_b == []
