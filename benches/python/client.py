"""Client side: what an auth hook adds to each outgoing request when its token is cached.
Each hook is applied to one prepared request, with no network (the token was fetched once from
the DevIdP beforehand); the cost of a no-op hook is subtracted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import requests
import requests_auth
import tokenward
import tokenward.httpx
import tokenward.requests
from authlib.integrations.requests_client import OAuth2Session
from fixtures import Realm
from timing import Case, interleaved

CLIENT_ID = "bench-agent"
SECRET = "bench-agent-secret"

TW_REQUESTS = "tokenward.requests.BearerAuth"
TW_HTTPX = "tokenward.httpx.BearerAuth"
REQUESTS_AUTH = "requests-auth OAuth2ClientCredentials"
AUTHLIB = "Authlib OAuth2Session"
BY_HAND = "a header set by hand (static token)"
NOOP = "no-op hook (subtracted)"


def client_cases(realm: Realm) -> list[Case]:
    idp = realm.idp
    idp.add_client(CLIENT_ID, secret=SECRET, token_lifetime=3600)
    url = "http://service.invalid/api/items?page=1"
    prepared = requests.Request("GET", url, headers={"Accept": "application/json"}).prepare()
    hx_request = httpx.Request("GET", url, headers={"Accept": "application/json"})

    tw_client = tokenward.TokenClient(
        token_url=idp.token_url, client_id=CLIENT_ID, client_secret=SECRET
    )
    tw_client.get_token()
    tw_requests = tokenward.requests.BearerAuth(tw_client)
    tw_httpx = tokenward.httpx.BearerAuth(tw_client)

    ra = requests_auth.OAuth2ClientCredentials(
        idp.token_url, client_id=CLIENT_ID, client_secret=SECRET
    )
    ra(prepared.copy())  # fetches and caches its token

    session = OAuth2Session(
        CLIENT_ID,
        SECRET,
        token_endpoint=idp.token_url,
        grant_type="client_credentials",
        token_endpoint_auth_method="client_secret_post",
    )
    session.fetch_token()
    authlib_auth = session.token_auth
    static = f"Bearer {tw_client.get_token()}"

    def by_hand(r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = static
        return r

    def noop(r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r

    def httpx_flow() -> httpx.Request:
        return next(tw_httpx.sync_auth_flow(hx_request))

    hooks: list[tuple[str, Callable[[], Any]]] = [
        (NOOP, lambda: noop(prepared)),
        (BY_HAND, lambda: by_hand(prepared)),
        (TW_REQUESTS, lambda: tw_requests(prepared)),
        (TW_HTTPX, httpx_flow),
        (REQUESTS_AUTH, lambda: ra(prepared)),
        (AUTHLIB, lambda: authlib_auth(prepared)),
    ]
    cases = []
    for name, fn in hooks:
        fn()
        if name == TW_HTTPX:
            assert hx_request.headers["Authorization"].startswith("Bearer ey")
        elif name != NOOP:
            assert prepared.headers["Authorization"].startswith("Bearer ey"), name
            del prepared.headers["Authorization"]
        cases.append(Case("client", name, "cached token", fn))
    return cases


def run_client(realm: Realm, rounds: int, batch_seconds: float) -> list[dict[str, Any]]:
    cases = client_cases(realm)
    interleaved(cases, rounds, batch_seconds)
    results = [c.summary() for c in cases]
    noop = next(r for r in results if r["name"] == NOOP)["median_us"]
    for r in results:
        r["overhead_us"] = r["median_us"] - noop
    return results
