"""Token exchange (RFC 8693) against Keycloak's standard token exchange (V2), realm `app` (issue
16, item 4): Agentic (`agentic`, confidential, exchange enabled) trades a user's real token for
one meant for Knowledge Flow through `TokenClient.exchange`, and a Knowledge Flow on uvicorn
that checks its audience strictly accepts that token and refuses the user's own. The refusals
are asserted as Keycloak 26.7.3 really answers them (tests/keycloak/README.md lists them)."""

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
import requests
import tokenward as tw
from _uvicorn import serve
from fastapi import Depends, FastAPI, Request, Response
from tokenward.fastapi import Authenticator, User

from ._app_realm import (
    AGENTIC_ID,
    AGENTIC_SECRET,
    EXCHANGE_CLIENT_ID,
    KNOWLEDGE_FLOW_ID,
    KNOWLEDGE_FLOW_SECRET,
    NO_AUDIENCE_CLIENT_ID,
    UI_CLIENT_ID,
    app_realm,
    password_grant,
)
from ._kc import HTTP_TIMEOUT, Keycloak

pytestmark = pytest.mark.keycloak

ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@pytest.fixture(scope="module")
def realm(keycloak: Keycloak) -> Keycloak:
    return app_realm(keycloak)


@dataclass
class Counted:
    """The token endpoint behind a pass-through on uvicorn that counts the requests."""

    url: str
    requests: list[int]
    lock: threading.Lock

    @property
    def hits(self) -> int:
        with self.lock:
            return len(self.requests)


@pytest.fixture(scope="module")
def token_endpoint(realm: Keycloak) -> Iterator[Counted]:
    counted = Counted("", [], threading.Lock())
    app = FastAPI()

    @app.post("/token")
    async def token(request: Request) -> Response:
        with counted.lock:
            counted.requests.append(1)
        headers = {
            name: value
            for name, value in request.headers.items()
            if name in ("authorization", "content-type", "accept")
        }
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            answer = await http.post(realm.token_url, content=await request.body(), headers=headers)
        return Response(
            answer.content, answer.status_code, media_type=answer.headers.get("content-type")
        )

    with serve(app) as url:
        counted.url = f"{url}/token"
        yield counted


@pytest.fixture(scope="module")
def knowledge_flow(realm: Keycloak) -> Iterator[str]:
    """Knowledge Flow with strict audience: `knowledge-flow` must be in `aud`."""
    auth = Authenticator(tw.Verifier(realm.issuer, audience=KNOWLEDGE_FLOW_ID), allowlist=False)
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(user: Annotated[User, Depends(auth.user)]) -> dict[str, Any]:
        claims = user.claims
        return {key: claims.get(key) for key in ("sub", "preferred_username", "azp", "aud")}

    with serve(app) as url:
        yield url


def agentic(token_url: str, **settings: Any) -> tw.TokenClient:
    settings.setdefault("client_secret", AGENTIC_SECRET)
    return tw.TokenClient(token_url, client_id=AGENTIC_ID, timeout=HTTP_TIMEOUT, **settings)


def whoami(service: str, token: str) -> requests.Response:
    return requests.get(
        f"{service}/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT
    )


def refused(client: tw.TokenClient, subject: str, **kwargs: Any) -> tw.TokenRequestError:
    with pytest.raises(tw.TokenRequestError) as caught:
        client.exchange(subject, **kwargs)
    return caught.value


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic"])
def test_an_exchanged_user_token_reaches_a_strict_knowledge_flow_once_fetched(
    realm: Keycloak, token_endpoint: Counted, knowledge_flow: str, method: str
) -> None:
    user = password_grant(realm, "alice", client_id=EXCHANGE_CLIENT_ID)
    subject = tw.Verifier(realm.issuer, audience=AGENTIC_ID).verify(user)
    assert KNOWLEDGE_FLOW_ID not in subject["aud"]
    assert whoami(knowledge_flow, user).status_code == 401, "the user's own token is refused"

    client = agentic(token_endpoint.url, auth_method=method)
    before = token_endpoint.hits
    exchanged = client.exchange(user, audience=KNOWLEDGE_FLOW_ID)
    assert token_endpoint.hits == before + 1
    answer = whoami(knowledge_flow, exchanged)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "sub": subject["sub"],
        "preferred_username": "alice",
        "azp": AGENTIC_ID,
        "aud": KNOWLEDGE_FLOW_ID,
    }

    assert client.exchange(user, audience=[KNOWLEDGE_FLOW_ID]) == exchanged
    assert token_endpoint.hits == before + 1, "the second exchange is answered from the cache"
    stats = client.stats()
    assert (stats["token_requests"], stats["exchange_hits"]) == (1, 1)


def test_without_audience_keycloak_grants_every_available_one(
    realm: Keycloak, knowledge_flow: str
) -> None:
    user = password_grant(realm, "bob", client_id=EXCHANGE_CLIENT_ID)
    exchanged = agentic(realm.token_url).exchange(user)
    claims = tw.Verifier(realm.issuer, audience=KNOWLEDGE_FLOW_ID).verify(exchanged)
    # agentic's audience mapper, plus `app` (audience resolve: bob holds one of its roles).
    assert set(claims["aud"]) >= {KNOWLEDGE_FLOW_ID, UI_CLIENT_ID}
    assert AGENTIC_ID not in claims["aud"]
    assert whoami(knowledge_flow, exchanged).status_code == 200


def test_issued_token_type_is_what_was_requested(realm: Keycloak) -> None:
    user = password_grant(realm, "carol", client_id=EXCHANGE_CLIENT_ID)
    client = agentic(realm.token_url)
    access = client.exchange(
        user, audience=KNOWLEDGE_FLOW_ID, requested_token_type=ACCESS_TOKEN_TYPE
    )
    assert tw.Verifier(realm.issuer, audience=KNOWLEDGE_FLOW_ID).verify(access)["typ"] == "Bearer"
    # Keycloak answers an ID token with token_type N_A and issued_token_type id_token.
    id_token = client.exchange(user, audience=KNOWLEDGE_FLOW_ID, requested_token_type=ID_TOKEN_TYPE)
    claims = tw.Verifier(realm.issuer, audience=AGENTIC_ID, token_types=["ID"]).verify(id_token)
    assert (claims["typ"], claims["preferred_username"]) == ("ID", "carol")
    # A type this client is not allowed (no refresh tokens for exchange) is a final refusal.
    exc = refused(
        client, user, requested_token_type="urn:ietf:params:oauth:token-type:refresh_token"
    )
    assert (exc.status, exc.error) == (400, "invalid_request")
    assert "requested_token_type unsupported" in str(exc)


@pytest.mark.parametrize(
    ("case", "status", "error", "description"),
    [
        (
            "requester not enabled",
            400,
            "invalid_request",
            "Standard token exchange is not enabled for the requested client",
        ),
        ("audience not available", 400, "invalid_request", "Requested audience not available"),
        ("audience not a client", 400, "invalid_client", "Audience not found"),
        (
            "subject not meant for the requester",
            403,
            "access_denied",
            "Client is not within the token audience",
        ),
        ("subject not a token", 400, "invalid_request", "Invalid token"),
    ],
)
def test_each_refusal_is_keycloaks_own_typed_and_not_retried(
    realm: Keycloak,
    token_endpoint: Counted,
    case: str,
    status: int,
    error: str,
    description: str,
) -> None:
    client = agentic(token_endpoint.url)
    user = password_grant(realm, "alice", client_id=EXCHANGE_CLIENT_ID)
    audience = KNOWLEDGE_FLOW_ID
    if case == "requester not enabled":
        # knowledge-flow is confidential but has no standard.token.exchange.enabled; the
        # subject (from `app`) is meant for it.
        client = tw.TokenClient(
            token_endpoint.url,
            client_id=KNOWLEDGE_FLOW_ID,
            client_secret=KNOWLEDGE_FLOW_SECRET,
            timeout=HTTP_TIMEOUT,
        )
        user, audience = password_grant(realm, "alice", client_id=UI_CLIENT_ID), AGENTIC_ID
    elif case == "audience not available":
        audience = NO_AUDIENCE_CLIENT_ID  # a client, but none of agentic's scopes yields it
    elif case == "audience not a client":
        audience = "no-such-client"
    elif case == "subject not meant for the requester":
        user = password_grant(realm, "alice", client_id=NO_AUDIENCE_CLIENT_ID)
    else:
        user = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNlY3JldC0xMjM0"
    before = token_endpoint.hits
    exc = refused(client, user, audience=audience)
    assert (exc.status, exc.error) == (status, error)
    assert description in str(exc)
    assert not exc.retryable
    assert token_endpoint.hits == before + 1, "a refusal is not retried"
    assert user.rsplit(".", 1)[-1][:16] not in f"{exc} {exc!r}"


def test_the_exchanged_token_keeps_only_its_audiences_client_roles(realm: Keycloak) -> None:
    """Knowledge Flow reads the roles of `app`: exchanged for `knowledge-flow` alone they are
    gone; with `app` as a second audience (available by audience resolve) they stay."""
    user = password_grant(realm, "alice", client_id=EXCHANGE_CLIENT_ID)
    client = agentic(realm.token_url)
    strict = tw.Verifier(realm.issuer, audience=KNOWLEDGE_FLOW_ID)
    alone = strict.verify(client.exchange(user, audience=KNOWLEDGE_FLOW_ID))
    assert UI_CLIENT_ID not in alone.get("resource_access", {})
    both = strict.verify(client.exchange(user, audience=[KNOWLEDGE_FLOW_ID, UI_CLIENT_ID]))
    assert set(both["aud"]) == {KNOWLEDGE_FLOW_ID, UI_CLIENT_ID}
    assert both["resource_access"][UI_CLIENT_ID]["roles"] == ["admin"]
