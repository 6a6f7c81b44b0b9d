"""Forwarding with token exchange: service A hands service B, which checks its audience strictly,
a token exchanged for B (requests, httpx and the FastAPI dependency), over real HTTP."""

from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
import requests
import tokenward as tw
from _uvicorn import serve
from conftest import MakeVerifier
from fastapi import Depends, FastAPI, HTTPException
from tokenward.fastapi import Authenticator, User
from tokenward.forwarding import ForwardedBearer
from tokenward.testing import DevIdP

TIMEOUT = 10
SECRET = "svc-a-secret-0b3f"


def make_service_b(auth: Authenticator) -> FastAPI:
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(user: Annotated[User, Depends(auth.user)]) -> dict[str, Any]:
        return {"uid": user.uid, "azp": user.claims["azp"], "aud": user.claims["aud"]}

    return app


def make_service_a(auth: Authenticator, client: tw.TokenClient, service_b: str) -> FastAPI:
    app = FastAPI()
    exchanged = auth.forwarding(exchange=(client, "svc-b"))

    @app.get("/plain")
    async def plain(bearer: Annotated[ForwardedBearer, Depends(auth.forwarded)]) -> Any:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.get(f"{service_b}/whoami", auth=bearer)
        return {"status": response.status_code}

    @app.get("/exchanged-async")
    async def exchanged_async(bearer: Annotated[ForwardedBearer, Depends(exchanged)]) -> Any:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.get(f"{service_b}/whoami", auth=bearer)
        if response.status_code != 200:
            raise HTTPException(500, f"service B answered {response.status_code}")
        return response.json()

    @app.get("/exchanged-sync")
    def exchanged_sync(user: Annotated[User, Depends(auth.user)]) -> Any:
        bearer = ForwardedBearer(user.token, exchange=(client, "svc-b"))
        response = requests.get(f"{service_b}/whoami", auth=bearer, timeout=TIMEOUT)
        response.raise_for_status()
        return response.json()

    return app


@pytest.fixture
def service_a(dev_idp: DevIdP, make_verifier: MakeVerifier) -> Iterator[str]:
    dev_idp.add_client("svc-a", SECRET, token_exchange=True, audiences=["svc-b"])
    dev_idp.add_client("svc-b", "svc-b-secret")
    client = tw.TokenClient(dev_idp.token_url, client_id="svc-a", client_secret=SECRET)
    auth_a = Authenticator(make_verifier(audience="svc-a"), allowlist=False)
    auth_b = Authenticator(make_verifier(audience="svc-b"), allowlist=False)
    with (
        serve(make_service_b(auth_b)) as b_url,
        serve(make_service_a(auth_a, client, b_url)) as a_url,
    ):
        yield a_url


def call(url: str, token: str) -> requests.Response:
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)


def test_the_callers_own_token_is_refused_by_a_strict_service_b(
    service_a: str, dev_idp: DevIdP
) -> None:
    response = call(f"{service_a}/plain", dev_idp.mint(sub="user-7", aud="svc-a"))
    assert response.json() == {"status": 401}


@pytest.mark.parametrize("path", ["/exchanged-async", "/exchanged-sync"])
def test_an_exchanged_token_reaches_service_b(service_a: str, dev_idp: DevIdP, path: str) -> None:
    token = dev_idp.mint(sub="user-7", aud="svc-a")
    response = call(f"{service_a}{path}", token)
    assert response.status_code == 200, response.text
    assert response.json() == {"uid": "user-7", "azp": "svc-a", "aud": "svc-b"}
    before = dev_idp.hits["token"]
    assert call(f"{service_a}{path}", token).status_code == 200
    assert dev_idp.hits["token"] == before, "the second call's exchange is cached"


def test_a_refused_exchange_is_a_502(service_a: str, dev_idp: DevIdP) -> None:
    # A accepts the caller, but the IdP no longer lets svc-a exchange.
    dev_idp.add_client("svc-a", SECRET, token_exchange=False)
    response = call(f"{service_a}/exchanged-async", dev_idp.mint(sub="user-7", aud="svc-a"))
    assert response.status_code == 502
    assert SECRET not in response.text


def test_forwarded_bearer_exchanges_at_construction(dev_idp: DevIdP) -> None:
    dev_idp.add_client("svc-a", SECRET, token_exchange=True, audiences=["svc-b"])
    dev_idp.add_client("svc-b", "svc-b-secret")
    client = tw.TokenClient(dev_idp.token_url, client_id="svc-a", client_secret=SECRET)
    caller = dev_idp.mint(sub="user-7", aud="svc-a")
    bearer = ForwardedBearer(caller, exchange=(client, "svc-b"))
    assert bearer.token != caller
    assert bearer == ForwardedBearer(caller, exchange=(client, ["svc-b"]))
    assert dev_idp.hits["token"] == 1
    with pytest.raises(ValueError):
        ForwardedBearer("a\r\nX: 1", exchange=(client, "svc-b"))
    with pytest.raises(tw.TokenRequestError) as refused:
        ForwardedBearer(caller, exchange=(client, "svc-x"))
    assert refused.value.error == "invalid_client"
    assert dev_idp.hits["token"] == 2
