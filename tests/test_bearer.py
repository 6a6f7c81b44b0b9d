"""The one bearer layer (tokenward._bearer) over real HTTP: every InvalidToken code's text in
both house styles, the Authorization header as the ASGI scope carries it, exempt paths that the
middleware and the dependency agree on, and the default authenticator made once."""

from __future__ import annotations

import dataclasses
import http.client
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlsplit

import pytest
import requests
import tokenward.fastapi as twf
from _helpers import expect_invalid, with_claims
from _uvicorn import serve
from conftest import MakeVerifier
from fastapi import Depends, FastAPI
from tokenward import smartem
from tokenward._bearer import INVALID_TOKEN_TEXTS, Identity
from tokenward.fastapi import Authenticator
from tokenward.middleware import BearerAuthMiddleware
from tokenward.testing import DevIdP

TIMEOUT = 10
AUD = "tw-api"

#: Each code the core rejects a token with: tokenward's 401 text, then SmartEM's (word for word
#: what its own code answered; its catch-all is "Invalid token"). Clients key on these.
EXPECTED_TEXTS: dict[str, tuple[str, str]] = {
    "malformed": ("The token is malformed", "Invalid token"),
    "too_large": ("The token is too large", "Invalid token"),
    "bad_signature": ("The token signature is invalid", "Invalid token"),
    "alg_not_allowed": ("The token signing algorithm is not allowed", "Invalid token"),
    "unknown_kid": ("The token signing key is unknown", "Cannot resolve signing key"),
    "expired": ("The token has expired", "Token expired"),
    "not_yet_valid": ("The token is not valid yet", "Invalid token"),
    "bad_issuer": ("The token issuer is not trusted", "Invalid token"),
    "bad_audience": ("The token audience is not accepted", "Invalid token"),
    "azp_not_allowed": (
        "The token was issued to a client that is not allowed",
        "Token azp not permitted",
    ),
    "wrong_token_type": ("The token is not an access token", "Invalid token"),
    "missing_claim": ("The token lacks a required claim", "Invalid token"),
    "bad_claim": ("The token has an invalid claim", "Invalid token"),
    "lifetime_too_long": ("The token lifetime exceeds the maximum permitted", "Invalid token"),
}


def rejected_tokens(idp: DevIdP) -> dict[str, str]:
    """One token per code, each wrong in that one way only (for `strict_verifier`)."""
    return {
        "malformed": "not-a-jwt",
        "too_large": idp.mint(aud=AUD, padding="x" * 5000),
        "bad_signature": with_claims(idp.mint(aud=AUD), sub="someone-else"),
        "alg_not_allowed": idp.mint(aud=AUD, alg="ES256"),
        "unknown_kid": idp.mint(aud=AUD, kid="no-such-kid"),
        "expired": idp.mint(aud=AUD, expires_in=-3600),
        "not_yet_valid": idp.mint(aud=AUD, nbf=int(time.time()) + 3600),
        "bad_issuer": idp.mint(aud=AUD, iss="http://evil.example/realms/dls"),
        "bad_audience": idp.mint(aud="another-api"),
        "azp_not_allowed": idp.mint(aud=AUD, azp="Some_Other_Client"),
        "wrong_token_type": idp.mint(aud=AUD, typ="ID"),
        "missing_claim": idp.mint(aud=AUD, exp=None),
        "bad_claim": idp.mint(aud=AUD, exp="soon"),
        "lifetime_too_long": idp.mint(aud=AUD, expires_in=7200),
    }


@pytest.fixture
def strict_verifier(make_verifier: MakeVerifier) -> Any:
    return make_verifier(
        algorithms=["RS256"], audience=AUD, allowed_azp=["SmartEM_User"], max_token_bytes=4096,
        max_lifetime=3600,
        jwks_cooldown=3600,  # an unknown kid is refused at once, not after the next refetch
    )


@pytest.fixture
def tokens(dev_idp: DevIdP, strict_verifier: Any) -> dict[str, str]:
    made = rejected_tokens(dev_idp)
    for code, token in made.items():
        expect_invalid(strict_verifier, token, code)  # the case really is that code
    return made


def get(url: str, authorization: str | None = None) -> requests.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return requests.get(url, headers=headers, timeout=TIMEOUT)


def raw_get(url: str, target: str, headers: list[tuple[str, str]]) -> int:
    """The status of a GET for exactly `target` with exactly `headers` (repeats included)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def middleware_app(auth: Authenticator) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BearerAuthMiddleware, authenticator=auth)

    @app.get("/{path:path}")
    async def anything(path: str) -> dict[str, str]:
        return {"path": path}

    return app


def dependency_app(auth: Authenticator) -> FastAPI:
    app = FastAPI(dependencies=[Depends(auth.app_dependency)])

    @app.get("/{path:path}")
    async def anything(path: str) -> dict[str, str]:
        return {"path": path}

    return app


def smartem_app() -> FastAPI:
    app = FastAPI(dependencies=[Depends(smartem.verify_token)])

    @app.get("/{path:path}")
    async def anything(
        path: str, claims: Annotated[dict[str, Any] | None, Depends(smartem.verify_token)]
    ) -> Any:
        return {"claims": claims}

    return app


# ---- the text of each code ---------------------------------------------------------------------


def test_the_table_has_one_row_per_code() -> None:
    assert set(INVALID_TOKEN_TEXTS) == set(EXPECTED_TEXTS)


def test_each_code_gets_its_tokenward_text(strict_verifier: Any, tokens: dict[str, str]) -> None:
    auth = Authenticator(strict_verifier, allowlist=False, role_clients=())
    with serve(middleware_app(auth)) as m_url, serve(dependency_app(auth)) as d_url:
        for code, token in tokens.items():
            text = EXPECTED_TEXTS[code][0]
            for url in (m_url, d_url):
                response = get(f"{url}/data", f"Bearer {token}")
                assert response.status_code == 401, (code, url)
                assert response.json() == {"detail": text}, code
                assert response.headers["WWW-Authenticate"] == (
                    f'Bearer error="invalid_token", error_description="{text}"'
                ), code


def test_each_code_gets_its_smartem_text(strict_verifier: Any, tokens: dict[str, str]) -> None:
    smartem.set_verifier(strict_verifier)
    try:
        with serve(smartem_app()) as url:
            for code, token in tokens.items():
                response = get(f"{url}/acquisitions", f"Bearer {token}")
                assert response.status_code == 401, code
                assert response.json() == {"detail": EXPECTED_TEXTS[code][1]}, code
                assert response.headers["WWW-Authenticate"] == "Bearer", code
    finally:
        smartem.reset_verifier()


# ---- the Authorization header, as the scope carries it -------------------------------------------


def test_two_authorization_headers_are_an_invalid_request(
    make_verifier: MakeVerifier, dev_idp: DevIdP
) -> None:
    """RFC 6750 section 3.1 (issue 11, item 14, a deliberate change: the first one used to
    count): a second header is refused with 400 `invalid_request` whatever either says, since
    a proxy in front may read the last one where we would read the first."""
    auth = Authenticator(make_verifier(), allowlist=False, role_clients=())
    good = f"Bearer {dev_idp.mint()}"
    for app in (middleware_app(auth), dependency_app(auth)):
        with serve(app) as url:
            assert raw_get(url, "/x", [("Authorization", good)]) == 200
            for pair in ((good, "Bearer x"), ("Bearer x", good), ("Basic eA==", good)):
                headers = [("Authorization", value) for value in pair]
                assert raw_get(url, "/x", headers) == 400, pair
            assert raw_get(url, "/x", [("Authorization", good), ("Authorization", good)]) == 400


def test_a_non_ascii_token_is_malformed_not_a_server_error(make_verifier: MakeVerifier) -> None:
    auth = Authenticator(make_verifier(), allowlist=False, role_clients=())
    with serve(middleware_app(auth)) as url:
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT)
        try:
            connection.putrequest("GET", "/x")
            connection.putheader("Authorization", "Bearer t\xf6ken".encode("latin-1"))
            connection.endheaders()
            response = connection.getresponse()
            assert response.status == 401
            assert response.getheader("WWW-Authenticate") == (
                'Bearer error="invalid_token", error_description="The token is malformed"'
            )
        finally:
            connection.close()


# ---- exempt paths ------------------------------------------------------------------------------

#: Request targets and whether they reach an app whose only exempt path is /health. The match is
#: exact, on the decoded path (`request.url.path`), never on the query.
EXEMPT_CASES = [
    ("/health", True),
    ("/health?token=x", True),
    ("/he%61lth", True),
    ("/health/", False),
    ("/Health", False),
    ("//health", False),
    ("/health%3F", False),
    ("/health%2F", False),
    ("/api/health", False),
]


def test_middleware_and_dependency_agree_on_exempt_paths(make_verifier: MakeVerifier) -> None:
    auth = Authenticator(make_verifier(), exempt_paths={"/health"}, allowlist=False)
    with serve(middleware_app(auth)) as m_url, serve(dependency_app(auth)) as d_url:
        for target, exempt in EXEMPT_CASES:
            expected = 200 if exempt else 401
            assert raw_get(m_url, target, []) == expected, ("middleware", target)
            assert raw_get(d_url, target, []) == expected, ("dependency", target)


# ---- the identity and the default authenticator --------------------------------------------------


def test_identity_is_frozen_and_never_shows_the_token() -> None:
    identity = Identity({"sub": "u1"}, "secret.token.value")
    assert "secret.token.value" not in repr(identity)
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.token = "other"  # type: ignore[misc]
    claims, token = identity
    assert (claims, token) == ({"sub": "u1"}, "secret.token.value")


@pytest.fixture
def no_default(dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KEYCLOAK_URL", dev_idp.base_url)
    monkeypatch.setenv("KEYCLOAK_REALM", "dls")
    for name in ("TOKENWARD_ALLOWLIST_FILE", "TOKENWARD_ROLE_CLIENTS", "KEYCLOAK_ALLOWED_AZP"):
        monkeypatch.delenv(name, raising=False)
    saved = twf._default
    twf._default = None
    yield
    twf._default = saved


def test_the_default_authenticator_is_made_once_under_concurrency(
    no_default: None, dev_idp: DevIdP
) -> None:
    gate = threading.Barrier(8)
    seen: list[Authenticator] = []

    def grab() -> None:
        gate.wait()
        seen.append(twf.default_authenticator())

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and all(a is seen[0] for a in seen)
    with serve(dependency_app(seen[0])) as url:
        assert get(f"{url}/x", f"Bearer {dev_idp.mint(sub='d7')}").status_code == 200
    configured = twf.configure(allowlist=False)
    assert twf.default_authenticator() is configured is not seen[0]
