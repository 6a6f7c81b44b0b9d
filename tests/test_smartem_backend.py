"""tokenward.smartem.verify_token as SmartEM's backend uses it: app-wide, over real HTTP."""

import logging
import time
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
import requests
from _helpers import with_claims
from _uvicorn import serve
from fastapi import Depends, FastAPI
from tokenward import smartem
from tokenward.smartem import EXEMPT_PATHS, JWT_LEEWAY_SECONDS, verify_token
from tokenward.testing import DevIdP

TIMEOUT = 10


def make_app() -> FastAPI:
    """An app shaped like smartem_backend's: verify_token on every route."""
    app = FastAPI(dependencies=[Depends(verify_token)])

    @app.get("/health")
    async def health(
        claims: Annotated[dict[str, Any] | None, Depends(verify_token)],
    ) -> dict[str, Any]:
        return {"status": "ok", "claims": claims}

    @app.get("/status")
    async def status() -> dict[str, str]:
        return {"status": "running"}

    @app.get("/acquisitions")
    async def acquisitions(claims: Annotated[dict[str, Any] | None, Depends(verify_token)]) -> Any:
        return {"claims": claims}

    return app


@pytest.fixture
def smartem_env(dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> Iterator[DevIdP]:
    """SmartEM's environment pointed at the DevIdP, and a fresh verifier per test."""
    monkeypatch.setenv("KEYCLOAK_URL", dev_idp.base_url)
    monkeypatch.setenv("KEYCLOAK_REALM", "dls")
    monkeypatch.delenv("KEYCLOAK_VERIFY_ISS", raising=False)
    monkeypatch.setenv("KEYCLOAK_ALLOWED_AZP", "SmartEM_User, SmartEM_Agent")
    for name in ("KEYCLOAK_AUDIENCE", "KEYCLOAK_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    smartem.reset_verifier()
    yield dev_idp
    smartem.reset_verifier()


@pytest.fixture
def app() -> FastAPI:
    return make_app()


@pytest.fixture
def base_url(smartem_env: DevIdP, app: FastAPI) -> Iterator[str]:
    with serve(app) as url:
        yield url


def get(url: str, authorization: str | None = None) -> requests.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return requests.get(url, headers=headers, timeout=TIMEOUT)


def assert_401(response: requests.Response, detail: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": detail}
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_constants() -> None:
    assert JWT_LEEWAY_SECONDS == 60
    assert {"/health", "/status", "/openapi.json", "/docs", "/redoc"} == EXEMPT_PATHS


def test_exempt_paths_pass_without_a_token_and_yield_none(
    base_url: str, smartem_env: DevIdP
) -> None:
    response = get(f"{base_url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "claims": None}
    # Even a garbage header is not looked at on an exempt path.
    response = get(f"{base_url}/health", "Bearer garbage")
    assert response.json() == {"status": "ok", "claims": None}
    assert get(f"{base_url}/status").json() == {"status": "running"}
    assert get(f"{base_url}/openapi.json").status_code == 200
    assert smartem_env.hits["jwks"] == 0


def test_missing_header(base_url: str) -> None:
    assert_401(get(f"{base_url}/acquisitions"), "Missing or malformed Authorization header")


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNzd29yZA==", "Token abc.def.ghi", "Bearerabc.def.ghi", "JWT x"]
)
def test_non_bearer_scheme(base_url: str, header: str) -> None:
    assert_401(get(f"{base_url}/acquisitions", header), "Missing or malformed Authorization header")


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "bearer    ", "BEARER \t "])
def test_empty_bearer(base_url: str, header: str) -> None:
    assert_401(get(f"{base_url}/acquisitions", header), "Empty bearer token")


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9..", "x y"])
def test_malformed_token(base_url: str, token: str) -> None:
    assert_401(get(f"{base_url}/acquisitions", f"Bearer {token}"), "Invalid token")


def test_expired_token(base_url: str, smartem_env: DevIdP) -> None:
    token = smartem_env.mint(expires_in=-(JWT_LEEWAY_SECONDS + 120))
    assert_401(get(f"{base_url}/acquisitions", f"Bearer {token}"), "Token expired")


def test_expired_within_leeway_is_accepted(base_url: str, smartem_env: DevIdP) -> None:
    now = int(time.time())
    # Issued before it expired: exp before iat is refused whatever the leeway.
    token = smartem_env.mint(iat=now - 300, exp=now - JWT_LEEWAY_SECONDS // 2)
    assert get(f"{base_url}/acquisitions", f"Bearer {token}").status_code == 200


def test_azp_not_allowed(base_url: str, smartem_env: DevIdP) -> None:
    token = smartem_env.mint(azp="Some_Other_Client")
    assert_401(get(f"{base_url}/acquisitions", f"Bearer {token}"), "Token azp not permitted")


def test_unknown_kid(base_url: str, smartem_env: DevIdP) -> None:
    token = smartem_env.mint(kid="not-a-published-kid")
    assert_401(get(f"{base_url}/acquisitions", f"Bearer {token}"), "Cannot resolve signing key")


def test_bad_signature(base_url: str, smartem_env: DevIdP) -> None:
    token = with_claims(smartem_env.mint(), sub="someone-else")
    assert_401(get(f"{base_url}/acquisitions", f"Bearer {token}"), "Invalid token")


def test_foreign_issuer(base_url: str, smartem_env: DevIdP) -> None:
    token = smartem_env.mint(iss="http://127.0.0.1:1/realms/dls")
    assert_401(get(f"{base_url}/acquisitions", f"Bearer {token}"), "Invalid token")


@pytest.mark.parametrize("typ", ["ID", "Refresh"])
def test_id_and_refresh_tokens_are_not_access_tokens(
    base_url: str, smartem_env: DevIdP, typ: str
) -> None:
    token = smartem_env.mint(typ=typ)
    assert_401(get(f"{base_url}/acquisitions", f"Bearer {token}"), "Invalid token")


def test_token_without_exp_is_rejected(base_url: str, smartem_env: DevIdP) -> None:
    token = smartem_env.mint(exp=None)
    assert_401(get(f"{base_url}/acquisitions", f"Bearer {token}"), "Invalid token")


def test_valid_token_returns_the_claims(base_url: str, smartem_env: DevIdP) -> None:
    claims = smartem_env.make_claims(sub="user-1", azp="SmartEM_User", preferred_username="ann")
    token = smartem_env.sign_claims(claims)
    response = get(f"{base_url}/acquisitions", f"Bearer {token}")
    assert response.status_code == 200, response.text
    assert response.json() == {"claims": claims}
    # The scheme is case-insensitive and surrounding whitespace is ignored.
    response = get(f"{base_url}/acquisitions", f"bearer   {token}  ")
    assert response.json() == {"claims": claims}


def test_agent_azp_is_allowed_too(base_url: str, smartem_env: DevIdP) -> None:
    token = smartem_env.mint(sub="service-account-agent", azp="SmartEM_Agent")
    response = get(f"{base_url}/acquisitions", f"Bearer {token}")
    assert response.status_code == 200
    assert response.json()["claims"]["azp"] == "SmartEM_Agent"


def test_without_allowed_azp_any_azp_passes(
    smartem_env: DevIdP, monkeypatch: pytest.MonkeyPatch, app: FastAPI
) -> None:
    monkeypatch.setenv("KEYCLOAK_ALLOWED_AZP", "")
    token = smartem_env.mint(azp="Anything")
    with serve(app) as url:
        response = get(f"{url}/acquisitions", f"Bearer {token}")
    assert response.status_code == 200
    assert response.json()["claims"]["azp"] == "Anything"


def test_verify_iss_false_accepts_another_issuer(
    smartem_env: DevIdP, monkeypatch: pytest.MonkeyPatch, app: FastAPI
) -> None:
    monkeypatch.setenv("KEYCLOAK_VERIFY_ISS", "false")
    token = smartem_env.mint(iss="https://keycloak.example.org/realms/dls")
    with serve(app) as url:
        response = get(f"{url}/acquisitions", f"Bearer {token}")
    assert response.status_code == 200, response.text
    assert response.json()["claims"]["iss"] == "https://keycloak.example.org/realms/dls"


def test_dependency_override(smartem_env: DevIdP, app: FastAPI) -> None:
    fake = {"sub": "test-user", "azp": "SmartEM_User"}
    app.dependency_overrides[verify_token] = lambda: fake
    with serve(app) as url:
        response = get(f"{url}/acquisitions")
        assert response.status_code == 200
        assert response.json() == {"claims": fake}
        # The override replaces verify_token everywhere, exempt routes included.
        assert get(f"{url}/health").json() == {"status": "ok", "claims": fake}
    assert smartem_env.hits["jwks"] == 0 and smartem_env.hits["discovery"] == 0


def test_no_keys_at_all_is_503_with_retry_after(
    base_url: str, smartem_env: DevIdP, caplog: pytest.LogCaptureFixture
) -> None:
    smartem_env.set_fault("jwks", "down")
    token = smartem_env.mint()
    with caplog.at_level(logging.WARNING, logger="tokenward.smartem"):
        response = get(f"{base_url}/acquisitions", f"Bearer {token}")
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert "WWW-Authenticate" not in response.headers
    assert smartem_env.hits["jwks"] >= 1
    assert any("signing keys" in r.getMessage() for r in caplog.records)
    assert token not in caplog.text


def test_cached_keys_survive_an_outage(base_url: str, smartem_env: DevIdP) -> None:
    token = smartem_env.mint()
    assert get(f"{base_url}/acquisitions", f"Bearer {token}").status_code == 200
    smartem_env.set_fault("jwks", "down")
    smartem_env.set_fault("discovery", "down")
    second = smartem_env.mint(sub="u2")
    response = get(f"{base_url}/acquisitions", f"Bearer {second}")
    assert response.status_code == 200
    assert response.json()["claims"]["sub"] == "u2"


def test_without_keycloak_url_requests_are_refused_not_let_through(
    dev_idp: DevIdP,
    monkeypatch: pytest.MonkeyPatch,
    app: FastAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("KEYCLOAK_URL", raising=False)
    smartem.reset_verifier()
    try:
        with caplog.at_level(logging.ERROR, logger="tokenward.smartem"), serve(app) as url:
            response = get(f"{url}/acquisitions", f"Bearer {dev_idp.mint()}")
            assert response.status_code == 500
            assert response.json() == {"detail": "Authentication is not configured"}
            # A missing header is still a plain 401, and exempt paths still answer.
            assert get(f"{url}/acquisitions").status_code == 401
            assert get(f"{url}/health").status_code == 200
        assert any("KEYCLOAK_URL" in r.getMessage() for r in caplog.records)
    finally:
        smartem.reset_verifier()


def test_the_verifier_is_made_once(base_url: str, smartem_env: DevIdP) -> None:
    for sub in ("a", "b", "c"):
        token = smartem_env.mint(sub=sub)
        assert get(f"{base_url}/acquisitions", f"Bearer {token}").status_code == 200
    assert smartem_env.hits["jwks"] == 1
