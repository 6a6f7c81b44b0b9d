"""The agent half of `python -m tokenward demo`: a requests session with `BearerAuth` calls a
small protected endpoint (verified by `Verifier`) through token expiry, a forced 401 and a key
rotation, and counts the token requests the IdP received."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import InvalidToken, TokenClient, Verifier
from .testing import DevIdP, advance_clock, reset_clock

Step = Callable[[str, bool, str], None]


class _Endpoint:
    """GET /whoami: 200 with the caller's sub, or 401. Tokens in `revoked` get a 401."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.revoked: set[str] = set()
        self.url = ""

    def answer(self, header: str | None) -> tuple[int, dict[str, Any]]:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token or token in self.revoked:
            return 401, {"error": "invalid_token"}
        try:
            return 200, {"sub": self.verifier.verify(token)["sub"]}
        except InvalidToken as e:
            return 401, {"error": "invalid_token", "code": e.code}


@contextmanager
def _serve(endpoint: _Endpoint) -> Iterator[_Endpoint]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = endpoint.answer(self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/whoami"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


def run(idp: DevIdP, step: Step) -> None:
    import requests

    from .requests import BearerAuth

    idp.add_client("SmartEM_Agent", secret="dev-agent-secret", token_lifetime=300)
    client = TokenClient(
        idp.token_url, client_id="SmartEM_Agent", client_secret="dev-agent-secret", timeout=2
    )
    backend = Verifier(idp.issuer, http_timeout=2.0)
    session = requests.Session()
    session.auth = BearerAuth(client)
    before = idp.hits["token"]

    def requested() -> int:
        return idp.hits["token"] - before

    with _serve(_Endpoint(backend)) as endpoint:
        first = session.get(endpoint.url, timeout=5)
        step("agent calls the backend", first.status_code == 200, f"token requests: {requested()}")
        for _ in range(5):
            session.get(endpoint.url, timeout=5).raise_for_status()
        step("five more calls", requested() == 1, f"token requests: {requested()} (cached)")

        try:
            # Near the end of the token's life (the demo moves tokenward's clock instead of waiting).
            advance_clock(285)
            late = session.get(endpoint.url, timeout=5)
        finally:
            reset_clock()
        step("token near expiry", late.status_code == 200, f"token requests: {requested()}")

        endpoint.revoked.add(client.get_token())
        forced = session.get(endpoint.url, timeout=5)
        retried = [r.status_code for r in forced.history]
        step(
            "backend answers 401 once",
            forced.status_code == 200 and retried == [401],
            f"401 -> new token -> 200; token requests: {requested()}",
        )

        jwks_before = idp.hits["jwks"]
        idp.rotate_keys(keep_old=False)
        backend.refresh_keys()  # the backend learns that the old key is gone
        rotated = session.get(endpoint.url, timeout=5)
        step(
            "IdP rotates and drops the old key",
            rotated.status_code == 200 and [r.status_code for r in rotated.history] == [401],
            f"401 -> new token -> 200; JWKS requests: {idp.hits['jwks'] - jwks_before}",
        )
    total = requested()
    step("token requests in all", total == 4, f"{total} (first, expiry, forced 401, rotation)")
