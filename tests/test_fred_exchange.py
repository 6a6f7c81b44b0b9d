"""`tokenward.fred` forwarding with token exchange (issue 16, item 2): Agentic, configured with
`initialize_user_security(..., exchange=(client, "knowledge-flow"))`, hands a Knowledge Flow
that checks its audience strictly (FRED_STRICT_AUDIENCE on) a token exchanged for it; without
the setting it forwards the user's own token, as Fred does. Real HTTP, the DevIdP."""

from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
import requests
import tokenward as tw
from _uvicorn import serve
from fastapi import Depends, FastAPI
from tokenward.fred import (
    ClientCredentialsProvider,
    FredSettings,
    KeycloakUser,
    UserSecurity,
    get_current_user,
    initialize_user_security,
)
from tokenward.testing import DevIdP

TIMEOUT = 10
SECRET = "agentic-secret-7f1e"
STRICT = FredSettings(strict_issuer=True, strict_audience=True)


@pytest.fixture
def realm(dev_idp: DevIdP) -> DevIdP:
    dev_idp.add_client("agentic", SECRET, token_exchange=True, audiences=["knowledge-flow"])
    dev_idp.add_client("knowledge-flow", "kf-secret")
    return dev_idp


def knowledge_flow(issuer: str) -> FastAPI:
    app = FastAPI()
    initialize_user_security(
        UserSecurity(realm_url=issuer, client_id="knowledge-flow"),
        app=app,
        settings=STRICT,
        allowlist=False,
    )

    @app.get("/me")
    async def me(user: Annotated[KeycloakUser, Depends(get_current_user)]) -> dict[str, Any]:
        return {"uid": user.uid, "username": user.username}

    return app


def agentic(issuer: str, kf: str, exchange: Any) -> FastAPI:
    app = FastAPI()
    initialize_user_security(
        UserSecurity(realm_url=issuer, client_id="agentic"),
        app=app,
        settings=STRICT,
        allowlist=False,
        exchange=exchange,
    )

    @app.get("/async")
    async def forward_async(
        user: Annotated[KeycloakUser, Depends(get_current_user)],
    ) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            answer = await client.get(f"{kf}/me", auth=await user.bearer_async())
        return {"status": answer.status_code, "body": answer.json()}

    @app.get("/sync")
    def forward_sync(user: Annotated[KeycloakUser, Depends(get_current_user)]) -> dict[str, Any]:
        answer = requests.get(f"{kf}/me", auth=user.bearer, timeout=TIMEOUT)
        return {"status": answer.status_code, "body": answer.json()}

    return app


@pytest.fixture
def services(realm: DevIdP) -> Iterator[tuple[str, str, str]]:
    """(Agentic with exchange, Agentic without, Knowledge Flow)."""
    base, name = realm.issuer.rsplit("/realms/", 1)
    provider = ClientCredentialsProvider(
        keycloak_base=base, realm=name, client_id="agentic", client_secret=SECRET
    )
    with serve(knowledge_flow(realm.issuer)) as kf:
        exchanging = agentic(realm.issuer, kf, exchange=(provider, "knowledge-flow"))
        with serve(exchanging) as with_exchange, serve(agentic(realm.issuer, kf, None)) as plain:
            yield with_exchange, plain, kf


def call(url: str, token: str) -> requests.Response:
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)


def user_token(realm: DevIdP) -> str:
    """What the UI hands Agentic: meant for `agentic`, not for Knowledge Flow."""
    return realm.mint(sub="alice-1", preferred_username="alice", aud=["agentic", "account"])


@pytest.mark.parametrize("path", ["/async", "/sync"])
def test_forwarding_with_exchange_reaches_a_strict_knowledge_flow(
    realm: DevIdP, services: tuple[str, str, str], path: str
) -> None:
    with_exchange, _, kf = services
    token = user_token(realm)
    assert call(f"{kf}/me", token).status_code == 401, "the user's own token is refused"
    answer = call(f"{with_exchange}{path}", token)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": 200, "body": {"uid": "alice-1", "username": "alice"}}
    requests_before = realm.hits["token"]
    assert call(f"{with_exchange}{path}", token).json()["status"] == 200
    assert realm.hits["token"] == requests_before, "the exchange is cached"


@pytest.mark.parametrize("path", ["/async", "/sync"])
def test_without_the_setting_the_users_own_token_is_forwarded(
    realm: DevIdP, services: tuple[str, str, str], path: str
) -> None:
    _, plain, _ = services
    answer = call(f"{plain}{path}", user_token(realm))
    assert answer.json()["status"] == 401, "Knowledge Flow is strict; Agentic forwarded as is"
    assert realm.hits["token"] == 0, "no exchange without the setting"
    # A token that carries both audiences passes through unchanged, as in Fred today.
    both = realm.mint(sub="bob-1", preferred_username="bob", aud=["agentic", "knowledge-flow"])
    assert call(f"{plain}{path}", both).json() == {
        "status": 200,
        "body": {"uid": "bob-1", "username": "bob"},
    }


def test_a_refused_exchange_is_a_502_without_the_token(
    realm: DevIdP, services: tuple[str, str, str]
) -> None:
    with_exchange, _, _ = services
    realm.add_client("agentic", SECRET, token_exchange=False)
    token = user_token(realm)
    answer = call(f"{with_exchange}/async", token)
    assert answer.status_code == 502
    assert answer.json() == {"detail": "token exchange failed"}
    assert token[-20:] not in answer.text


def test_the_exchange_setting_is_checked(realm: DevIdP) -> None:
    client = tw.TokenClient(realm.token_url, client_id="agentic", client_secret=SECRET)
    config = UserSecurity(realm_url=realm.issuer, client_id="agentic")
    for bad, error in [
        ((object(), "knowledge-flow"), TypeError),
        (client, TypeError),
        ((client, ""), ValueError),
    ]:
        with pytest.raises(error):
            initialize_user_security(config, settings=STRICT, allowlist=False, exchange=bad)
