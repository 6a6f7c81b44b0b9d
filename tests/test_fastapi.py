"""tokenward.fastapi over real HTTP: dependencies, User, exempt paths, RFC 6750 answers."""

import threading
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
import requests
import tokenward as tw
import tokenward.fastapi as twf
from _helpers import with_claims
from _uvicorn import serve
from conftest import MakeVerifier
from fastapi import Depends, FastAPI
from tokenward.fastapi import Authenticator, User, parse_authorization
from tokenward.forwarding import ForwardedBearer
from tokenward.testing import DevIdP

TIMEOUT = 10


def user_view(user: User) -> dict[str, Any]:
    return {
        "uid": user.uid,
        "username": user.username,
        "email": user.email,
        "roles": list(user.roles),
        "groups": list(user.groups),
        "azp": user.azp,
        "token_jti": user.claims.get("jti"),
        "token_len": len(user.token),
    }


def make_app(auth: Authenticator) -> FastAPI:
    app = FastAPI(dependencies=[Depends(auth.app_dependency)])

    @app.get("/health")
    async def health(claims: Annotated[dict[str, Any] | None, Depends(auth.app_dependency)]) -> Any:
        return {"ok": True, "claims": claims}

    @app.get("/claims")
    async def claims(claims: Annotated[dict[str, Any], Depends(auth.claims)]) -> dict[str, Any]:
        return claims

    @app.get("/me")
    async def me(user: Annotated[User, Depends(auth.user)]) -> dict[str, Any]:
        return user_view(user)

    return app


@pytest.fixture
def auth(make_verifier: MakeVerifier) -> Authenticator:
    return Authenticator(
        make_verifier(), exempt_paths={"/health"}, role_clients=["fred-app"], allowlist=False
    )


@pytest.fixture
def base_url(auth: Authenticator) -> Iterator[str]:
    with serve(make_app(auth)) as url:
        yield url


def get(url: str, authorization: str | None = None) -> requests.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return requests.get(url, headers=headers, timeout=TIMEOUT)


def assert_invalid_token(response: requests.Response, description: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer error="invalid_token", error_description="{description}"'
    )
    assert response.json() == {"detail": description}


# ---- header parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ("missing", None)),
        ("", ("missing", None)),
        ("   ", ("missing", None)),
        ("Basic abc", ("not_bearer", None)),
        ("Bearerabc", ("not_bearer", None)),
        ("Bearer", ("empty", None)),
        ("bearer   ", ("empty", None)),
        ("Bearer abc", ("bearer", "abc")),
        ("BEARER  abc  ", ("bearer", "abc")),
        ("Bearer a.b_c~d+e/f-9==", ("bearer", "a.b_c~d+e/f-9==")),
        # RFC 6750 section 2.1 (issue 11, item 14): only spaces after the scheme, and the
        # token is a b64token; str.split() used to take a tab, NBSP or NEL as the separator.
        ("BEARER\tabc  ", ("not_bearer", None)),
        ("Bearer\xa0abc", ("not_bearer", None)),
        ("Bearer\x85abc", ("not_bearer", None)),
        ("Bearer a b", ("malformed", None)),
        ("Bearer \tabc", ("malformed", None)),
        ("Bearer a=b", ("malformed", None)),
        ("Bearer abc\x0b", ("malformed", None)),
        ("Bearer \u212aate", ("malformed", None)),
    ],
)
def test_parse_authorization(header: str | None, expected: tuple[str, str | None]) -> None:
    assert parse_authorization(header) == expected


# ---- answers -------------------------------------------------------------------------------------


def test_valid_token_gives_claims_and_user(base_url: str, dev_idp: DevIdP) -> None:
    claims = dev_idp.make_claims(
        sub="f1c2",
        azp="fred-app",
        preferred_username="alice",
        email="Alice@Example.org",
        realm_access={"roles": ["viewer", "offline_access"]},
        resource_access={
            "fred-app": {"roles": ["editor", "viewer"]},
            "other-app": {"roles": ["admin"]},
        },
        groups=["/team-a", "/team-b"],
    )
    token = dev_idp.sign_claims(claims)
    response = get(f"{base_url}/claims", f"Bearer {token}")
    assert response.status_code == 200, response.text
    assert response.json() == claims

    response = get(f"{base_url}/me", f"Bearer {token}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "uid": "f1c2",
        "username": "alice",
        "email": "Alice@Example.org",
        # realm roles, then the configured client's roles; no duplicates; other clients ignored
        "roles": ["viewer", "offline_access", "editor"],
        "groups": ["/team-a", "/team-b"],
        "azp": "fred-app",
        "token_jti": claims["jti"],
        "token_len": len(token),
    }


def test_user_from_claims_is_defensive() -> None:
    user = User.from_claims(
        {"sub": 5, "realm_access": "nope", "resource_access": {"c": {"roles": ["r", 3]}}},
        "tok",
        ["c", "missing"],
    )
    assert user.uid == ""
    assert user.roles == ("r",)
    assert user.groups == ()
    assert user.username is None and user.email is None and user.azp is None
    assert "tok" not in repr(user)
    assert user.bearer.token == "tok"


def test_missing_header_has_no_error_attribute(base_url: str, dev_idp: DevIdP) -> None:
    for path in ("/claims", "/me"):
        response = get(f"{base_url}{path}")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json() == {"detail": "Not authenticated"}
    # An unsupported scheme counts as no credentials (RFC 6750 section 3.1).
    response = get(f"{base_url}/me", "Basic dXNlcjpwYXNzd29yZA==")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert dev_idp.hits["jwks"] == 0


def test_empty_bearer(base_url: str) -> None:
    assert_invalid_token(get(f"{base_url}/me", "Bearer "), "The bearer token is empty")


@pytest.mark.parametrize(
    ("make", "description"),
    [
        (lambda idp: "not-a-jwt", "The token is malformed"),
        (lambda idp: idp.mint(expires_in=-3600), "The token has expired"),
        (lambda idp: idp.mint(kid="no-such-kid"), "The token signing key is unknown"),
        (lambda idp: with_claims(idp.mint(), sub="x"), "The token signature is invalid"),
        (
            lambda idp: idp.mint(iss="http://evil.example/realms/dls"),
            "The token issuer is not trusted",
        ),
        (lambda idp: idp.mint(typ="ID"), "The token is not an access token"),
        (lambda idp: idp.mint(typ="Refresh"), "The token is not an access token"),
        (lambda idp: idp.mint(exp=None), "The token lacks a required claim"),
    ],
    ids=[
        "malformed",
        "expired",
        "unknown_kid",
        "bad_signature",
        "issuer",
        "id",
        "refresh",
        "no_exp",
    ],
)
def test_rejected_tokens(base_url: str, dev_idp: DevIdP, make: Any, description: str) -> None:
    assert_invalid_token(get(f"{base_url}/me", f"Bearer {make(dev_idp)}"), description)


def test_real_id_and_refresh_tokens_are_refused(base_url: str, dev_idp: DevIdP) -> None:
    dev_idp.add_client("fred-app", secret="s3cret")
    dev_idp.add_user("bob", password="pw", email="bob@example.org", roles=["viewer"])
    grant = requests.post(
        dev_idp.token_url,
        data={
            "grant_type": "password",
            "client_id": "fred-app",
            "client_secret": "s3cret",
            "username": "bob",
            "password": "pw",
            "scope": "openid",
        },
        timeout=TIMEOUT,
    )
    assert grant.status_code == 200, grant.text
    tokens = grant.json()
    for kind in ("id_token", "refresh_token"):
        response = get(f"{base_url}/me", f"Bearer {tokens[kind]}")
        assert_invalid_token(response, "The token is not an access token")
    response = get(f"{base_url}/me", f"Bearer {tokens['access_token']}")
    assert response.status_code == 200
    assert response.json()["username"] == "bob"


def test_exempt_path_needs_no_token(base_url: str) -> None:
    response = get(f"{base_url}/health")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "claims": None}


def test_app_wide_dependency_protects_every_other_route(auth: Authenticator) -> None:
    app = make_app(auth)

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"plain": "yes"}

    with serve(app) as url:
        assert get(f"{url}/plain").status_code == 401


def test_no_keys_is_503_with_retry_after(make_verifier: MakeVerifier, dev_idp: DevIdP) -> None:
    auth = Authenticator(make_verifier(), retry_after=17, allowlist=False)
    dev_idp.set_fault("jwks", "500")
    with serve(make_app(auth)) as url:
        response = get(f"{url}/me", f"Bearer {dev_idp.mint()}")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "17"
    assert dev_idp.hits["jwks"] >= 1


def test_openapi_declares_the_bearer_scheme(base_url: str) -> None:
    schema = get(f"{base_url}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An OIDC access token (JWT) from the realm.",
    }
    assert schema["paths"]["/me"]["get"]["security"] == [{"bearer": []}]
    assert get(f"{base_url}/docs").status_code == 200


def test_realm_in_challenge(make_verifier: MakeVerifier) -> None:
    auth = Authenticator(make_verifier(), realm="dls", allowlist=False)
    with serve(make_app(auth)) as url:
        assert get(f"{url}/me").headers["WWW-Authenticate"] == 'Bearer realm="dls"'
        assert get(f"{url}/me", "Bearer x").headers["WWW-Authenticate"] == (
            'Bearer realm="dls", error="invalid_token", error_description="The token is malformed"'
        )


def test_one_verification_per_request(auth: Authenticator, dev_idp: DevIdP) -> None:
    calls: list[str] = []
    verifier = auth.verifier

    class CountingVerifier:
        issuer = verifier.issuer

        async def verify_async(self, token: str) -> dict[str, Any]:
            calls.append(token)
            return await verifier.verify_async(token)

    counting = Authenticator(CountingVerifier(), exempt_paths={"/health"}, allowlist=False)  # type: ignore[arg-type]
    with serve(make_app(counting)) as url:
        response = get(f"{url}/me", f"Bearer {dev_idp.mint()}")
    assert response.status_code == 200
    # app-wide dependency + the route's user dependency: verified once
    assert len(calls) == 1


# ---- configuration -------------------------------------------------------------------------------


def test_settings_build_the_verifier_lazily_once(dev_idp: DevIdP) -> None:
    auth = Authenticator(
        verifier_settings={"issuer": dev_idp.issuer, "http_timeout": 2.0}, allowlist=False
    )
    assert auth._verifier is None  # nothing made before the first request
    with serve(make_app(auth)) as url:
        for sub in ("a", "b"):
            assert get(f"{url}/me", f"Bearer {dev_idp.mint(sub=sub)}").json()["uid"] == sub
    assert auth.verifier is auth.verifier
    assert auth.verifier.issuer == dev_idp.issuer


def test_factory_is_called_once_under_concurrency(dev_idp: DevIdP) -> None:
    made: list[tw.Verifier] = []
    gate = threading.Barrier(8)

    def factory() -> tw.Verifier:
        made.append(tw.Verifier(dev_idp.issuer, http_timeout=2.0))
        return made[-1]

    auth = Authenticator(factory, allowlist=False)
    results: list[tw.Verifier] = []

    def grab() -> None:
        gate.wait()
        results.append(auth.verifier)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1
    assert len(results) == 8 and all(v is made[0] for v in results)


def test_from_environment(dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYCLOAK_URL", dev_idp.base_url)
    monkeypatch.setenv("KEYCLOAK_REALM", "dls")
    monkeypatch.setenv("KEYCLOAK_ALLOWED_AZP", "fred-app")
    monkeypatch.setenv("TOKENWARD_ROLE_CLIENTS", "fred-app")
    monkeypatch.delenv("TOKENWARD_ALLOWLIST_FILE", raising=False)
    auth = Authenticator()
    assert auth.role_clients == ("fred-app",)
    token = dev_idp.mint(azp="fred-app", resource_access={"fred-app": {"roles": ["editor"]}})
    with serve(make_app(auth)) as url:
        response = get(f"{url}/me", f"Bearer {token}")
        assert response.status_code == 200
        assert response.json()["roles"] == ["editor"]
        other = get(f"{url}/me", f"Bearer {dev_idp.mint(azp='other')}")
        assert_invalid_token(other, "The token was issued to a client that is not allowed")


def test_missing_configuration_is_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEYCLOAK_URL", raising=False)
    auth = Authenticator(allowlist=False, exempt_paths={"/health"})
    with serve(make_app(auth)) as url:
        response = get(f"{url}/me", "Bearer abc")
        assert response.status_code == 500
        assert response.json() == {"detail": "Authentication is not configured"}
        assert get(f"{url}/health").status_code == 200


@pytest.fixture
def default_reset() -> Iterator[None]:
    saved = twf._default
    twf._default = None
    yield
    twf._default = saved


def test_module_level_dependencies(
    default_reset: None, make_verifier: MakeVerifier, dev_idp: DevIdP
) -> None:
    twf.configure(make_verifier(), exempt_paths={"/open"}, allowlist=False)
    app = FastAPI(dependencies=[Depends(twf.require_auth)])

    @app.get("/open")
    async def open_route(
        claims: Annotated[dict[str, Any] | None, Depends(twf.require_auth)],
    ) -> Any:
        return {"claims": claims}

    @app.get("/me")
    async def me(user: Annotated[User, Depends(twf.get_current_user)]) -> dict[str, Any]:
        return user_view(user)

    @app.get("/claims")
    async def claims(claims: Annotated[dict[str, Any], Depends(twf.get_claims)]) -> dict[str, Any]:
        return claims

    @app.get("/forward")
    async def forward(bearer: Annotated[ForwardedBearer, Depends(twf.forwarded_bearer)]) -> Any:
        return {"header": bearer.headers["Authorization"]}

    with serve(app) as url:
        assert get(f"{url}/open").json() == {"claims": None}
        forwarded = dev_idp.mint(sub="f1")
        assert get(f"{url}/forward", f"Bearer {forwarded}").json() == {
            "header": f"Bearer {forwarded}"
        }
        assert get(f"{url}/forward", "Bearer nope").status_code == 401
        assert get(f"{url}/me").status_code == 401
        token = dev_idp.mint(sub="m1")
        assert get(f"{url}/me", f"Bearer {token}").json()["uid"] == "m1"
        assert get(f"{url}/claims", f"Bearer {token}").json()["sub"] == "m1"
    assert twf.default_authenticator().exempt_paths == frozenset({"/open"})


def test_dependency_overrides_work_for_module_level_user(default_reset: None) -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(user: Annotated[User, Depends(twf.get_current_user)]) -> dict[str, Any]:
        return user_view(user)

    fake = User.from_claims({"sub": "fake", "preferred_username": "f"}, "t")
    app.dependency_overrides[twf.get_current_user] = lambda: fake
    with serve(app) as url:
        assert get(f"{url}/me").json()["uid"] == "fake"


# ---- the event loop ------------------------------------------------------------------------------


def test_a_key_fetch_does_not_block_the_event_loop(dev_idp: DevIdP) -> None:
    """While one request waits on a slow JWKS fetch, the same server keeps answering."""
    auth = Authenticator(
        tw.Verifier(dev_idp.issuer, http_timeout=60.0), exempt_paths={"/health"}, allowlist=False
    )
    token = dev_idp.mint(sub="patient")
    dev_idp.set_fault("jwks", "slow")
    with serve(make_app(auth)) as url:
        outcome: dict[str, requests.Response] = {}
        waiting = threading.Thread(
            target=lambda: outcome.setdefault("me", get(f"{url}/me", f"Bearer {token}"))
        )
        waiting.start()
        try:
            assert dev_idp.in_flight.wait_for("jwks", 1, timeout=TIMEOUT)
            # The fetch is pending; an exempt route of the same (single-loop) server answers.
            health = get(f"{url}/health")
            assert health.status_code == 200
            assert dev_idp.in_flight["jwks"] == 1, "the fetch should still be pending"
            assert "me" not in outcome
        finally:
            dev_idp.set_fault("jwks", None)
            waiting.join(timeout=TIMEOUT)
    assert outcome["me"].status_code == 200
    assert outcome["me"].json()["uid"] == "patient"
