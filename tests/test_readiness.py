"""tokenward.fastapi's warm start (`warm_lifespan`) and readiness route, served by uvicorn,
against the DevIdP over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import requests
import tokenward as tw
from _helpers import MakeVerifier
from _uvicorn import serve
from fastapi import Depends, FastAPI
from tokenward.fastapi import Authenticator, readiness_router, warm_lifespan
from tokenward.testing import DevIdP

TIMEOUT = 10.0
SECRET = "ready-secret"


def get(url: str, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(url, headers=headers, timeout=TIMEOUT)


def protected_app(auth: Authenticator, **lifespan: Any) -> FastAPI:
    app = FastAPI(
        lifespan=warm_lifespan(auth, **lifespan), dependencies=[Depends(auth.app_dependency)]
    )
    app.include_router(readiness_router(auth))
    app.get("/auth-ready")(auth.readiness)

    @app.get("/me")
    async def me(claims: dict[str, Any] = Depends(auth.claims)) -> dict[str, Any]:  # noqa: B008
        return {"sub": claims["sub"]}

    return app


def test_after_start_up_the_first_request_fetches_no_keys(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    auth = Authenticator(make_verifier(), exempt_paths={"/ready", "/auth-ready"}, allowlist=False)
    with serve(protected_app(auth)) as url:
        assert dev_idp.hits["jwks"] == 1, "the key set was fetched at start-up"
        for path in ("/ready", "/auth-ready"):
            ready = get(f"{url}{path}")
            assert ready.status_code == 200
            assert ready.json()["ready"] is True and ready.json()["keys"] >= 1
        assert get(f"{url}/me", dev_idp.mint(sub="w1")).json() == {"sub": "w1"}
        assert dev_idp.hits["jwks"] == 1, "the first request waited on no fetch"


def test_with_the_idp_down_readiness_answers_503_then_200_once_it_is_back(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(jwks_uri=dev_idp.jwks_uri)
    auth = Authenticator(verifier, exempt_paths={"/ready"}, allowlist=False)
    dev_idp.set_fault("jwks", "down")
    with serve(protected_app(auth)) as url:
        answer = get(f"{url}/ready")
        assert answer.status_code == 503
        assert answer.json()["ready"] is False and answer.json()["last_error"]
        failed = dev_idp.hits["jwks"]
        dev_idp.set_fault("jwks", None)
        # The background retry is the only thing that fetches (probes read state only).
        assert dev_idp.hits.wait_for("jwks", failed + 1, timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while (answer := get(f"{url}/ready")).status_code != 200:
            assert time.monotonic() < deadline, answer.json()
        assert answer.json()["ready"] is True and answer.json()["last_error"] is None
        fetched = dev_idp.hits["jwks"]
        assert get(f"{url}/me", dev_idp.mint(sub="w2")).json() == {"sub": "w2"}
        assert dev_idp.hits["jwks"] == fetched


def test_required_fails_the_start_up(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    auth = Authenticator(make_verifier(jwks_uri=dev_idp.jwks_uri), allowlist=False)
    dev_idp.set_fault("jwks", "500")
    lifespan = warm_lifespan(auth, required=True)
    entered = []

    async def start() -> None:
        async with lifespan(FastAPI()):
            entered.append(True)

    with pytest.raises(tw.KeySetUnavailable):
        asyncio.run(start())
    assert entered == []


def test_the_apps_own_lifespan_runs_inside(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    events: list[str] = []
    verifier = make_verifier()

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[None]:
        events.append(f"startup ready={verifier.health()['ready']}")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=warm_lifespan(verifier, lifespan=own))
    with serve(app):
        assert events == ["startup ready=True"]
    assert events == ["startup ready=True", "shutdown"]


def test_a_token_client_with_a_verifier_is_ready_when_both_are(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    dev_idp.add_client("agent", secret=SECRET)
    client = tw.TokenClient(dev_idp.token_url, client_id="agent", client_secret=SECRET, timeout=2)
    verifier = make_verifier()
    app = FastAPI(lifespan=warm_lifespan(verifier, client))
    app.include_router(readiness_router(verifier, client, path="/healthz/ready"))
    with serve(app) as url:
        body = get(f"{url}/healthz/ready").json()
        assert body["ready"] is True
        assert [c["ready"] for c in body["components"]] == [True, True]
        assert "expires_in" in body["components"][1]
        assert dev_idp.hits["token"] == 1
        client.invalidate()
        answer = get(f"{url}/healthz/ready")
        assert answer.status_code == 503 and answer.json()["components"][1]["ready"] is False


def test_an_unconfigured_authenticator_is_never_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KEYCLOAK_URL", "KEYCLOAK_REALM", "KEYCLOAK_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    auth = Authenticator(allowlist=False)
    app = FastAPI()
    app.include_router(readiness_router(auth))
    with serve(app) as url:
        answer = get(f"{url}/ready")
        assert answer.status_code == 503
        assert "KEYCLOAK_URL" in answer.json()["last_error"]
