"""The HTTP transport: proxies (the environment's and `proxy=`), User-Agent, extra headers,
and TLS failures that say why; against the DevIdP, a tiny forward proxy and an HTTPS server
with certificates made by trustme, all over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import tokenward as tw
import trustme
from tokenward import _native
from tokenward.testing import DevIdP

SECRET = "proxy-test-secret"
PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
NO_PROXY_VARS = ("NO_PROXY", "no_proxy")


class ForwardProxy(ThreadingHTTPServer):
    """A plain-HTTP forward proxy: records each request line and its headers, then relays it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Relay(BaseHTTPRequestHandler):
    server: ForwardProxy
    # No proxy for the relay itself, whatever the environment says.
    _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _relay(self) -> None:
        with self.server.lock:
            self.server.seen.append(
                (self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
            )
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        forwarded = {
            k: v for k, v in self.headers.items() if k.lower() not in {"host", "proxy-connection"}
        }
        request = urllib.request.Request(self.path, data=body, headers=forwarded)
        request.method = self.command
        try:
            answer = self._opener.open(request, timeout=10)
            status, headers, content = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as exc:
            status, headers, content = exc.code, exc.headers, exc.read()
        self.send_response(status)
        for name in ("Content-Type", "Cache-Control"):
            if headers.get(name):
                self.send_header(name, headers[name])
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = _relay
    do_POST = _relay


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardProxy]:
    for name in PROXY_VARS + NO_PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    server = ForwardProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_http_proxy_from_the_environment_carries_user_agent_and_headers(
    dev_idp: DevIdP, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    verifier = tw.Verifier(dev_idp.issuer, http_timeout=5, headers={"X-Deployment": "blue"})
    assert verifier.verify(dev_idp.mint(sub="p1"))["sub"] == "p1"
    paths = [path for _, path, _ in proxy.seen]
    assert dev_idp.jwks_uri in paths, "the absolute URL went to the proxy"
    for _, _, headers in proxy.seen:
        assert headers["user-agent"] == f"tokenward/{_native.__version__}"
        assert headers["x-deployment"] == "blue"
    assert dev_idp.hits["jwks"] == 1


def test_no_proxy_is_honoured(
    dev_idp: DevIdP, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    verifier = tw.Verifier(dev_idp.issuer, http_timeout=5)
    verifier.verify(dev_idp.mint())
    assert proxy.seen == []
    assert dev_idp.hits["jwks"] == 1


def test_the_proxy_setting_for_verifier_and_token_client(
    dev_idp: DevIdP, proxy: ForwardProxy
) -> None:
    verifier = tw.Verifier(dev_idp.issuer, http_timeout=5, proxy=proxy.url)
    verifier.warm()
    dev_idp.add_client("agent", secret=SECRET)
    client = tw.TokenClient(
        dev_idp.token_url,
        client_id="agent",
        client_secret=SECRET,
        timeout=5,
        proxy=proxy.url,
        headers={"User-Agent": "my-agent/2"},
    )
    assert verifier.verify(client.get_token())["azp"] == "agent"
    methods = [(method, path) for method, path, _ in proxy.seen]
    assert ("GET", dev_idp.jwks_uri) in methods and ("POST", dev_idp.token_url) in methods
    posted = [h for m, _, h in proxy.seen if m == "POST"]
    assert posted[0]["user-agent"] == "my-agent/2", "a caller's own User-Agent wins"


@pytest.mark.parametrize(
    "url", ["not a url", "ftp://proxy:21", "socks5://user:hunter2@proxy:1080", "http://"]
)
def test_a_bad_proxy_is_a_config_error_that_does_not_repeat_it(url: str) -> None:
    for make in (
        lambda: tw.Verifier("https://idp.example/realms/x", proxy=url),
        lambda: tw.TokenClient(
            "https://idp.example/t", client_id="a", client_secret="s", proxy=url
        ),
    ):
        with pytest.raises(tw.ConfigError, match="proxy") as info:
            make()
        assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"Authorization": "Bearer x"}, "Authorization cannot be set"),
        ({"host": "evil"}, "host cannot be set"),
        ({"bad name": "x"}, "not a header name"),
        ({"X-Key": "line\nbreak-secret"}, "not a header value"),
        (["X-A", "b"], "mapping"),
        ({"X-A": 1}, "mapping"),
    ],
)
def test_bad_headers_are_config_errors(headers: Any, words: str) -> None:
    with pytest.raises(tw.ConfigError, match="headers") as info:
        tw.Verifier("https://idp.example/realms/x", headers=headers)
    assert words in str(info.value)
    assert "secret" not in str(info.value)


# ---- TLS ------------------------------------------------------------------------------------


class _Jwks(BaseHTTPRequestHandler):
    body = b""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


def https_server(cert_pem: bytes, key_pem: bytes, tmp: Path, body: bytes) -> ThreadingHTTPServer:
    (tmp / "server.pem").write_bytes(cert_pem + key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "server.pem")
    handler = type("Jwks", (_Jwks,), {"body": body})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def jwks_body(dev_idp: DevIdP) -> bytes:
    return json.dumps({"keys": dev_idp._keys.public_jwks()}).encode()


def test_a_server_certificate_signed_by_the_ca_bundle_is_trusted(
    tmp_path: Path, jwks_body: bytes
) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    server = https_server(
        b"".join(b.bytes() for b in leaf.cert_chain_pems),
        leaf.private_key_pem.bytes(),
        tmp_path,
        jwks_body,
    )
    try:
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        url = f"https://127.0.0.1:{server.server_address[1]}/certs"
        verifier = tw.Verifier(
            "https://idp.example/realms/x", jwks_uri=url, ca_bundle=tmp_path / "ca.pem"
        )
        verifier.warm()
        assert verifier.health()["ready"] is True
        without = tw.Verifier("https://idp.example/realms/x", jwks_uri=url, http_timeout=5)
        with pytest.raises(tw.KeySetUnavailable, match="TLS") as info:
            without.warm()
        assert "UnknownIssuer" in str(info.value), str(info.value)
    finally:
        server.shutdown()
        server.server_close()


def test_a_self_signed_certificate_as_ca_bundle_is_refused_with_the_reason(
    tmp_path: Path, jwks_body: bytes
) -> None:
    # A dev Keycloak's certificate: self-signed, CA:true, presented by the server itself.
    ca = trustme.CA()
    server = https_server(ca.cert_pem.bytes(), ca.private_key_pem.bytes(), tmp_path, jwks_body)
    try:
        ca.cert_pem.write_to_path(str(tmp_path / "self-signed.pem"))
        url = f"https://127.0.0.1:{server.server_address[1]}/certs"
        verifier = tw.Verifier(
            "https://idp.example/realms/x",
            jwks_uri=url,
            ca_bundle=tmp_path / "self-signed.pem",
            http_timeout=5,
        )
        with pytest.raises(tw.KeySetUnavailable) as info:
            verifier.warm()
        text = str(info.value)
        assert "CaUsedAsEndEntity" in text and "self-signed" in text, text
        assert "CaUsedAsEndEntity" in (verifier.health()["last_error"] or "")
    finally:
        server.shutdown()
        server.server_close()
