"""Issue 11, item 2: a hostile token endpoint that echoes the credentials it was sent. No field
of the failure (`.error`, `str`, `repr`, `args`) and no log line may carry the client secret,
the Basic credentials or the client assertion, not even in part: redaction comes before any
truncation, so a secret straddling the 200-character cut of `error_description` leaves no half
behind. Over real HTTP, for every client authentication method."""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import tokenward as tw
from tokenward._native import SigningKey

SECRET = "Zq8-hostile-echo-secret-5f1c7e29d4b3a6"
#: How much of a credential may show: none of it, so no window of this many characters.
WINDOW = 8
#: What `error_description` keeps of the server's text.
CUT = 200

Echo = Callable[[dict[str, str]], tuple[int, dict[str, Any]]]


def _credentials(handler: BaseHTTPRequestHandler, body: str) -> dict[str, str]:
    """What the request carried: the form's secret or assertion, and the Basic header."""
    form = dict(urllib.parse.parse_qsl(body))
    sent = {k: form[k] for k in ("client_secret", "client_assertion") if k in form}
    header = handler.headers.get("Authorization", "")
    if header.startswith("Basic "):
        sent["basic"] = header[6:]
        decoded = base64.b64decode(header[6:]).decode()
        sent["basic_secret"] = urllib.parse.unquote_plus(decoded.split(":", 1)[1])
    sent["raw_body"] = body
    return sent


@pytest.fixture
def hostile() -> Iterator[tuple[str, list[dict[str, str]], list[Echo]]]:
    """A token endpoint whose answer is built by the test's `echo` from what it was sent."""
    seen: list[dict[str, str]] = []
    echo: list[Echo] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            sent = _credentials(self, body)
            seen.append(sent)
            status, document = echo[0](sent)
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token", seen, echo
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _client(url: str, method: str) -> tw.TokenClient:
    if method == "private_key_jwt":
        key = SigningKey.generate("ES256", "agent-key")
        return tw.TokenClient(url, client_id="agent", private_key=key.private_pem(), timeout=2)
    return tw.TokenClient(
        url, client_id="agent", client_secret=SECRET, auth_method=method, timeout=2
    )


def _credential_of(sent: dict[str, str]) -> list[str]:
    return [v for k, v in sent.items() if k != "raw_body"]


def _leaks(text: str, credentials: list[str]) -> list[str]:
    found = []
    for credential in credentials:
        for i in range(len(credential) - WINDOW + 1):
            if credential[i : i + WINDOW] in text:
                found.append(credential[i : i + WINDOW])
                break
    return found


def _straddling(credential: str) -> str:
    """A description whose 200-character cut falls in the middle of `credential`."""
    return "x" * (CUT - len(credential) // 2) + credential + " (echoed)"


METHODS = ["client_secret_post", "client_secret_basic", "client_secret_jwt", "private_key_jwt"]

ECHOES: dict[str, Callable[[str], tuple[int, dict[str, Any]]]] = {
    # The credential as the OAuth `error` code, alone and inside one.
    "error": lambda c: (401, {"error": c}),
    "error-prefixed": lambda c: (400, {"error": f"invalid_client {c}"[:64]}),
    # Cut at 200 characters in the middle of the credential.
    "straddling-description": lambda c: (
        400,
        {"error": "invalid_request", "error_description": _straddling(c)},
    ),
    # Retryable: each retry is logged at WARNING with the description.
    "straddling-503": lambda c: (
        503,
        {"error": "temporarily_unavailable", "error_description": _straddling(c)},
    ),
    "token-type": lambda c: (200, {"access_token": "t", "token_type": c}),
}


@pytest.mark.parametrize("echo_name", sorted(ECHOES))
@pytest.mark.parametrize("method", METHODS)
def test_an_echoed_credential_never_shows(
    hostile: tuple[str, list[dict[str, str]], list[Echo]],
    caplog: pytest.LogCaptureFixture,
    method: str,
    echo_name: str,
) -> None:
    url, seen, echo = hostile
    shape = ECHOES[echo_name]

    def answer(sent: dict[str, str]) -> tuple[int, dict[str, Any]]:
        # The longest credential the request carried: the assertion, else the secret.
        credential = max(_credential_of(sent), key=len)
        return shape(credential)

    echo.append(answer)
    caplog.set_level(logging.DEBUG, logger="tokenward")
    client = _client(url, method)
    with pytest.raises(tw.TokenRequestError) as info:
        client.get_token()
    error = info.value
    assert seen, "the endpoint was asked"
    credentials = [c for sent in seen for c in _credential_of(sent)]
    if method != "private_key_jwt":
        credentials.append(SECRET)
    texts = {
        "error": str(error.error),
        "str": str(error),
        "repr": repr(error),
        "args": repr(error.args),
        "logs": "\n".join(r.getMessage() for r in caplog.records),
    }
    for field, text in texts.items():
        assert _leaks(text, credentials) == [], (field, text)
    if "straddling" in echo_name:
        assert "[redacted]" in str(error) or "[redact" in str(error), str(error)
    if echo_name == "straddling-503":
        assert len(seen) >= 2 and any(r.levelno == logging.WARNING for r in caplog.records)


def test_the_secret_echoed_in_error_is_cut_from_error(
    hostile: tuple[str, list[dict[str, str]], list[Echo]],
) -> None:
    url, _, echo = hostile
    echo.append(lambda sent: (401, {"error": sent["client_secret"]}))
    with pytest.raises(tw.TokenRequestError) as info:
        _client(url, "client_secret_post").get_token()
    assert info.value.error == "[redacted]"
    assert info.value.status == 401 and not info.value.retryable
