"""The same FastAPI apps as app.py, called in-process through ASGI with no network: what each
mode costs per request inside the server, free of the load generator's and the kernel's noise."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from fixtures import AZP, REALM, Realm
from load import MODES
from timing import Case

Message = dict[str, Any]


def _scope(token: str | None) -> Message:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode("ascii")))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/items",
        "raw_path": b"/items",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


def run_asgi(realm: Realm, rounds: int, batch: int) -> list[dict[str, Any]]:
    base = realm.issuer.rsplit("/realms/", 1)[0]
    os.environ.update(KEYCLOAK_URL=base, KEYCLOAK_REALM=REALM, KEYCLOAK_ALLOWED_AZP=AZP)
    from app import make_app

    token = realm.tokens["RS256"].token
    apps = {mode: make_app(mode) for mode in MODES}
    body = {"type": "http.request", "body": b"", "more_body": False}
    statuses: list[int] = []

    async def receive() -> Message:
        return body

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def requests(app: Any, scope: Message, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await app(dict(scope), receive, send)
        return time.perf_counter() - start

    loop = asyncio.new_event_loop()
    cases = []
    try:
        scopes = {mode: _scope(token) for mode in MODES}  # the same request everywhere
        for mode, app in apps.items():
            loop.run_until_complete(requests(app, scopes[mode], 50))  # warm-up, JWKS fetch
            if set(statuses) != {200}:
                raise RuntimeError(f"{mode}: statuses {sorted(set(statuses))}")
            statuses.clear()
            cases.append(Case("asgi", mode, "RS256", lambda: None, n=batch))
        for _ in range(rounds):
            for case in cases:
                elapsed = loop.run_until_complete(
                    requests(apps[case.name], scopes[case.name], batch)
                )
                case.per_op.append(elapsed / batch)
        if set(statuses) != {200}:
            raise RuntimeError(f"statuses {sorted(set(statuses))}")
    finally:
        loop.close()
    return [c.summary() for c in cases]
