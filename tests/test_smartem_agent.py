"""tokenward.smartem on the agent side: KeycloakConfig, load_keycloak_config, KeycloakClient."""

import dataclasses
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import tokenward as tw
from _protected_server import protected_resource
from tokenward.requests import BearerAuth
from tokenward.smartem import (
    KeycloakClient,
    KeycloakConfig,
    KeycloakConfigError,
    KeycloakConnectionError,
    KeycloakConnectTimeout,
    KeycloakHTTPError,
    KeycloakReadTimeout,
    KeycloakResponseError,
    KeycloakTimeout,
    KeycloakTokenError,
    load_keycloak_config,
)
from tokenward.testing import DevIdP
from typing_extensions import Self

SECRET = "dev-agent-secret-4f1d"


# ---- configuration -------------------------------------------------------------------------------


def test_config_is_frozen_and_hides_the_secret() -> None:
    config = KeycloakConfig("http://kc:8080/", "dls", "SmartEM_Agent", SECRET)
    assert SECRET not in repr(config)
    assert config.token_url == "http://kc:8080/realms/dls/protocol/openid-connect/token"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.client_id = "x"  # type: ignore[misc]
    assert config == KeycloakConfig("http://kc:8080/", "dls", "SmartEM_Agent", SECRET)


def test_load_config(tmp_path: Path) -> None:
    path = tmp_path / "keycloak.env"
    path.write_text(
        "# SmartEM agent credentials\n"
        "\n"
        "KEYCLOAK_URL = http://keycloak.example:8080 \n"
        "  KEYCLOAK_REALM=dls\n"
        "KEYCLOAK_CLIENT_ID=SmartEM_Agent\n"
        "not a setting\n"
        "KEYCLOAK_CLIENT_SECRET= abc=def==  \n"
        "EXTRA=ignored\n",
        encoding="utf-8",
    )
    config = load_keycloak_config(path)
    assert config == KeycloakConfig(
        url="http://keycloak.example:8080",
        realm="dls",
        client_id="SmartEM_Agent",
        client_secret="abc=def==",
    )
    assert load_keycloak_config(str(path)) == config


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_keycloak_config(tmp_path / "nope.env")


def test_load_config_names_every_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "keycloak.env"
    path.write_text("KEYCLOAK_URL=http://kc\nKEYCLOAK_CLIENT_SECRET=\n# KEYCLOAK_REALM=dls\n")
    with pytest.raises(ValueError, match="missing") as info:
        load_keycloak_config(path)
    message = str(info.value)
    for key in ("KEYCLOAK_REALM", "KEYCLOAK_CLIENT_ID", "KEYCLOAK_CLIENT_SECRET"):
        assert key in message
    assert "KEYCLOAK_URL" not in message


# ---- the client ----------------------------------------------------------------------------------


@pytest.fixture
def config(dev_idp: DevIdP) -> KeycloakConfig:
    dev_idp.add_client("SmartEM_Agent", secret=SECRET, token_lifetime=300, roles=["agent"])
    return KeycloakConfig(dev_idp.base_url, "dls", "SmartEM_Agent", SECRET)


@pytest.fixture
def client(config: KeycloakConfig) -> Iterator[KeycloakClient]:
    with KeycloakClient(config, timeout=2.0) as kc:
        yield kc


def test_truthy_and_named(client: KeycloakClient, dev_idp: DevIdP) -> None:
    assert client  # SmartEM's code tests `if self._keycloak_client:`
    assert bool(client) is True
    assert client.client_id == "SmartEM_Agent"
    assert SECRET not in repr(client)
    assert dev_idp.hits["token"] == 0, "nothing is fetched before the first get_token()"


def test_get_token_gives_a_valid_agent_token_and_caches_it(
    client: KeycloakClient, dev_idp: DevIdP
) -> None:
    token = client.get_token()
    claims = tw.Verifier(dev_idp.issuer, http_timeout=2.0).verify(token)
    assert claims["azp"] == "SmartEM_Agent"
    assert claims["realm_access"]["roles"] == ["agent"]
    assert client.get_token() == token
    assert dev_idp.hits["token"] == 1


def test_invalidate_then_get_token_fetches_anew(client: KeycloakClient, dev_idp: DevIdP) -> None:
    first = client.get_token()
    assert dev_idp.hits["token"] == 1
    client.invalidate()
    second = client.get_token()
    assert dev_idp.hits["token"] == 2
    assert second != first
    assert client.get_token() == second
    assert dev_idp.hits["token"] == 2


def test_thread_safe_under_16_threads(client: KeycloakClient, dev_idp: DevIdP) -> None:
    threads = 16
    barrier = threading.Barrier(threads)
    tokens: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            token = client.get_token()
            with lock:
                tokens.append(token)
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=30)
    assert errors == []
    assert len(tokens) == threads
    assert len(set(tokens)) == 1, "every thread gets the same token"
    assert dev_idp.hits["token"] == 1, "concurrent callers share one fetch"


def test_concurrent_invalidate_and_get_token(client: KeycloakClient, dev_idp: DevIdP) -> None:
    """16 threads that each invalidate and fetch: no errors, every token valid."""
    threads = 16
    barrier = threading.Barrier(threads)
    tokens: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            client.invalidate()
            token = client.get_token()
            with lock:
                tokens.append(token)
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=30)
    assert errors == []
    assert len(tokens) == threads
    verifier = tw.Verifier(dev_idp.issuer, http_timeout=2.0)
    for token in set(tokens):
        assert verifier.verify(token)["azp"] == "SmartEM_Agent"
    assert 1 <= dev_idp.hits["token"] <= threads


#: The `requests` class SmartEM's client raised for each DevIdP fault (and ours must be too).
FAULT_CLASSES: dict[str, type[Exception]] = {
    "down": requests.ConnectionError,  # the connection is dropped without an answer
    "500": requests.HTTPError,
    "garbage": ValueError,  # 200, not JSON: SmartEM's `response.json()` raised a ValueError
    "slow": requests.Timeout,
}


@pytest.mark.parametrize("fault", list(FAULT_CLASSES))
def test_idp_failure_raises_a_requests_exception(
    config: KeycloakConfig, dev_idp: DevIdP, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    dev_idp.set_fault("token", fault)
    with (
        KeycloakClient(config, timeout=1.0) as kc,
        caplog.at_level(logging.ERROR),
        pytest.raises(requests.RequestException) as info,
    ):
        kc.get_token()
    error = info.value
    assert isinstance(error, KeycloakTokenError)
    assert isinstance(error, FAULT_CLASSES[fault]), type(error).__mro__
    assert isinstance(error.token_error, tw.TokenRequestError)
    assert error.__cause__ is error.token_error
    assert dev_idp.hits["token"] >= 1
    assert SECRET not in str(error) and SECRET not in caplog.text


def test_wrong_secret_raises_with_the_oauth_error(config: KeycloakConfig, dev_idp: DevIdP) -> None:
    bad = dataclasses.replace(config, client_secret="wrong")
    with KeycloakClient(bad, timeout=2.0) as kc, pytest.raises(KeycloakTokenError) as info:
        kc.get_token()
    assert info.value.status == 401
    assert info.value.error == "invalid_client"
    assert info.value.retryable is False


def test_repeated_failures_stay_requests_exceptions(
    client: KeycloakClient, dev_idp: DevIdP
) -> None:
    """The agent's retry loop catches only requests.RequestException: a call made while the
    client holds back after a failure (or after it, with the IdP still failing) raises one too."""
    dev_idp.set_fault("token", "500")
    for _ in range(3):
        with pytest.raises(requests.RequestException):
            client.get_token()


def test_close_is_idempotent(config: KeycloakConfig) -> None:
    kc = KeycloakClient(config, timeout=2.0)
    kc.get_token()
    kc.close()
    kc.close()


# ---- the exception classes, for failures caused for real ----------------------------------------


@pytest.mark.parametrize("fault", [None, "500"])
def test_an_error_status_is_an_http_error_with_its_response(
    config: KeycloakConfig, dev_idp: DevIdP, fault: str | None
) -> None:
    """SmartEM's agent reads `e.response.status_code` in its `except requests.HTTPError`."""
    bad = config if fault else dataclasses.replace(config, client_secret="wrong")
    dev_idp.set_fault("token", fault)
    expected = 500 if fault else 401
    with KeycloakClient(bad, timeout=2.0) as kc, pytest.raises(requests.HTTPError) as info:
        kc.get_token()
    error = info.value
    assert isinstance(error, KeycloakHTTPError) and isinstance(error, KeycloakTokenError)
    assert not isinstance(error, (requests.ConnectionError, requests.Timeout, ValueError))
    assert error.response is not None
    assert error.response.status_code == error.status == expected
    assert error.response.url == kc.token_url
    assert error.response.text == ""
    if not fault:
        assert error.error == "invalid_client"
        assert "invalid_client" in str(error)
        assert error.response.reason == "Unauthorized"


def test_a_refused_port_is_a_connection_error() -> None:
    # Bound but not listening: every connect is refused while the socket is held.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        config = KeycloakConfig(f"http://127.0.0.1:{port}", "dls", "SmartEM_Agent", SECRET)
        with (
            KeycloakClient(config, timeout=2.0) as kc,
            pytest.raises(requests.ConnectionError) as info,
        ):
            kc.get_token()
    error = info.value
    assert isinstance(error, KeycloakConnectionError) and isinstance(error, KeycloakTokenError)
    assert not isinstance(error, (requests.HTTPError, requests.Timeout))
    assert error.status is None and error.response is None and error.retryable
    assert error.token_error is not None and error.token_error.transport == "connect"


def test_a_silent_server_is_a_timeout() -> None:
    # Listening, so the connection is made (by the kernel), but nothing ever answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        config = KeycloakConfig(f"http://127.0.0.1:{port}", "dls", "SmartEM_Agent", SECRET)
        with KeycloakClient(config, timeout=0.3) as kc, pytest.raises(requests.Timeout) as info:
            kc.get_token()
    error = info.value
    assert isinstance(error, KeycloakTimeout) and isinstance(error, KeycloakTokenError)
    assert isinstance(error, (requests.ReadTimeout, KeycloakReadTimeout))
    assert not isinstance(error, (requests.HTTPError, requests.ConnectionError))
    assert error.status is None and error.retryable


def test_a_full_accept_queue_is_a_connect_timeout() -> None:
    # A backlog of 0 holds one connection nobody accepts; the kernel then drops further SYNs,
    # so the client's connect itself times out (SmartEM's client raised ConnectTimeout here).
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2.0):
            config = KeycloakConfig(f"http://127.0.0.1:{port}", "dls", "SmartEM_Agent", SECRET)
            # 1 s: the connect timeout is 0.9 of it, and a 100 ms gap to the request's own
            # timeout still tells them apart on a loaded machine (30 ms sometimes did not).
            with (
                KeycloakClient(config, timeout=1.0) as kc,
                pytest.raises(requests.ConnectTimeout) as info,
            ):
                kc.get_token()
    error = info.value
    assert isinstance(error, KeycloakConnectTimeout) and isinstance(error, KeycloakTimeout)
    assert isinstance(error, requests.ConnectionError) and isinstance(error, KeycloakTokenError)
    assert error.token_error is not None and error.token_error.transport == "connect_timeout"
    assert error.status is None and error.retryable


# ---- the token request, against a token endpoint that records what it is sent -------------------


class TokenEndpoint:
    """A token endpoint on 127.0.0.1 that answers every POST with `answer` (JSON) and records
    each request's form."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.forms: list[dict[str, list[str]]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                endpoint.forms.append(parse_qs(self.rfile.read(length).decode()))
                body = json.dumps(endpoint.answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def test_posts_a_client_credentials_grant_with_the_credentials() -> None:
    with TokenEndpoint({"access_token": "opaque-1", "token_type": "Bearer"}) as idp:
        config = KeycloakConfig(idp.base_url, "dls", "SmartEM_Agent", SECRET)
        with KeycloakClient(config, timeout=2.0) as kc:
            assert kc.get_token() == "opaque-1"
    assert idp.forms == [
        {
            "grant_type": ["client_credentials"],
            "client_id": ["SmartEM_Agent"],
            "client_secret": [SECRET],
        }
    ]


def test_without_expires_in_a_token_is_kept_for_the_default_300_seconds(
    clock: Any,
) -> None:
    with TokenEndpoint({"access_token": "opaque-1", "token_type": "Bearer"}) as idp:
        config = KeycloakConfig(idp.base_url, "dls", "SmartEM_Agent", SECRET)
        with KeycloakClient(config, refresh_buffer_seconds=30, timeout=2.0) as kc:
            assert kc.get_token() == "opaque-1"
            clock(260)  # 40 s left of an assumed 300: still outside the 30 s buffer
            assert kc.get_token() == "opaque-1"
            assert len(idp.forms) == 1
            idp.answer = {"access_token": "opaque-2", "token_type": "Bearer"}
            clock(20)  # 20 s left: inside the buffer, so fetched anew
            assert kc.get_token() == "opaque-2"
            assert len(idp.forms) == 2


def test_a_response_without_access_token_raises() -> None:
    with TokenEndpoint({"token_type": "Bearer", "expires_in": 300}) as idp:
        config = KeycloakConfig(idp.base_url, "dls", "SmartEM_Agent", SECRET)
        with KeycloakClient(config, timeout=2.0) as kc, pytest.raises(ValueError) as info:
            kc.get_token()
    assert isinstance(info.value, KeycloakResponseError)
    assert isinstance(info.value, requests.RequestException)
    assert "access_token" in str(info.value)


def test_refreshes_within_the_buffer_before_expiry(
    config: KeycloakConfig, dev_idp: DevIdP, clock: Any
) -> None:
    with KeycloakClient(config, refresh_buffer_seconds=30, timeout=2.0) as kc:
        first = kc.get_token()
        clock(100)  # 200 s left of 300
        assert kc.get_token() == first
        assert dev_idp.hits["token"] == 1
        clock(175)  # 25 s left: inside the buffer
        second = kc.get_token()
        assert second != first
        assert dev_idp.hits["token"] == 2


def test_leaving_the_context_drops_the_cached_token(
    config: KeycloakConfig, dev_idp: DevIdP
) -> None:
    with KeycloakClient(config, timeout=2.0) as kc:
        first = kc.get_token()
        assert kc.get_token() == first
    assert dev_idp.hits["token"] == 1
    assert kc.get_token() != first
    assert dev_idp.hits["token"] == 2


# ---- SmartEM's seams and the configuration's errors ----------------------------------------------


@pytest.mark.parametrize("url", ["http://keycloak.test", "http://keycloak.test/"])
def test_token_url_seam(url: str) -> None:
    client = KeycloakClient(KeycloakConfig(url, "dls", "X", "Y"))
    assert client._token_url == "http://keycloak.test/realms/dls/protocol/openid-connect/token"
    assert client.token_url == client._token_url


def write_config(tmp_path: Path, **values: str) -> Path:
    lines = {
        "KEYCLOAK_URL": "http://kc:8080/",
        "KEYCLOAK_REALM": "dls",
        "KEYCLOAK_CLIENT_ID": "SmartEM_Agent",
        "KEYCLOAK_CLIENT_SECRET": "s3cret",
    }
    lines.update(values)
    path = tmp_path / "agent.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ('"http://kc:8080/"', "http://kc:8080/"),
        ("'http://kc:8080/'", "http://kc:8080/"),
        ('  "http://kc:8080/"   # the test realm', "http://kc:8080/"),
        ("http://kc:8080/", "http://kc:8080/"),
    ],
)
def test_load_config_strips_matching_quotes(tmp_path: Path, written: str, read: str) -> None:
    config = load_keycloak_config(write_config(tmp_path, KEYCLOAK_URL=written))
    assert config.url == read
    assert config.token_url == "http://kc:8080/realms/dls/protocol/openid-connect/token"


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (r'"a\"b\\c"', 'a"b\\c'),  # double quotes: backslash escapes
        (r"'a\'b\\c'", "a'b\\c"),  # single quotes: only \' and \\
        (r"'a\nb'", r"a\nb"),
        ('"a#b"', "a#b"),  # a # inside quotes is part of the value
        ("a'b\"", "a'b\""),  # unquoted: as it stands
    ],
)
def test_load_config_unquotes_as_dotenv(tmp_path: Path, written: str, read: str) -> None:
    config = load_keycloak_config(write_config(tmp_path, KEYCLOAK_CLIENT_SECRET=written))
    assert config.client_secret == read


@pytest.mark.parametrize("written", ['"http://kc:8080/', "'http://kc:8080/\"", '"a" b'])
def test_an_unclosed_quote_names_the_file_and_the_key(tmp_path: Path, written: str) -> None:
    path = write_config(tmp_path, KEYCLOAK_URL=written)
    with pytest.raises(ValueError) as info:
        load_keycloak_config(path)
    assert isinstance(info.value, KeycloakConfigError)
    assert str(path) in str(info.value) and "KEYCLOAK_URL" in str(info.value)
    assert "line 1" in str(info.value)
    assert info.value.setting == "KEYCLOAK_URL" and info.value.path == str(path)


@pytest.mark.parametrize("url", ["kc:8080", "ftp://kc/", "http://"])
def test_a_url_the_client_refuses_names_the_file_and_the_key(tmp_path: Path, url: str) -> None:
    path = write_config(tmp_path, KEYCLOAK_URL=url)
    with pytest.raises(KeycloakConfigError) as info:
        load_keycloak_config(path)
    assert str(path) in str(info.value) and "KEYCLOAK_URL" in str(info.value)
    assert info.value.setting == "KEYCLOAK_URL"
    assert isinstance(info.value.__cause__, tw.ConfigError)


def test_missing_keys_name_the_file_and_a_likely_typo(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "agent.env"
    path.write_text(
        "KEYCLOAK_URL=http://kc\nKEYCLOAK_RELAM=dls\n"
        "KEYCLOAK_CLIENT_ID=a\nKEYCLOAK_CLIENT_SECRET=b\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="tokenward"), pytest.raises(ValueError) as info:
        load_keycloak_config(path)
    assert str(path) in str(info.value)
    assert "KEYCLOAK_REALM (KEYCLOAK_RELAM is set: a typo?)" in str(info.value)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{path} sets KEYCLOAK_RELAM, which tokenward does not read: did you mean KEYCLOAK_REALM?"
    ]


def test_a_typo_in_an_optional_spelling_is_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path, KEYCLOAK_CLIENT_SECRT="x")
    with caplog.at_level(logging.WARNING, logger="tokenward"):
        load_keycloak_config(path)
        load_keycloak_config(path)
    assert [r.getMessage() for r in caplog.records] == [
        (
            f"{path} sets KEYCLOAK_CLIENT_SECRT, which tokenward does not read: "
            "did you mean KEYCLOAK_CLIENT_SECRET?"
        )
    ]


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://kc:8080/realms/dls", "http://kc:8080"),
        ("http://kc:8080/realms/dls/", "http://kc:8080"),
        ("https://id.example/auth/realms/other", "https://id.example/auth"),
        ("http://kc:8080/realms/", "http://kc:8080"),
    ],
)
def test_a_url_with_the_realm_in_it_is_refused(tmp_path: Path, url: str, base: str) -> None:
    path = write_config(tmp_path, KEYCLOAK_URL=url)
    with pytest.raises(KeycloakConfigError) as info:
        load_keycloak_config(path)
    message = str(info.value)
    assert str(path) in message and "KEYCLOAK_URL" in message and repr(base) in message
    assert info.value.setting == "KEYCLOAK_URL"
    with pytest.raises(KeycloakConfigError, match="already contains a realm path"):
        KeycloakClient(KeycloakConfig(url, "dls", "a", "b"))


def test_a_host_named_realms_is_not_a_realm_path() -> None:
    config = KeycloakConfig("https://realms.example", "dls", "a", "b")
    assert config.token_url == "https://realms.example/realms/dls/protocol/openid-connect/token"


def test_the_stream_path_refreshes_on_a_401_with_bearer_auth(
    client: KeycloakClient, dev_idp: DevIdP
) -> None:
    """SmartEM's SSE client opens its stream with `requests.get(..., stream=True)`; with
    `auth=BearerAuth(keycloak_client)` a 401 when it opens gets one retry with a fresh token."""
    verifier = tw.Verifier(dev_idp.issuer, http_timeout=2.0)
    with protected_resource(verifier) as resource:
        resource.revoked.add(client.get_token())
        with requests.get(
            resource.url, auth=BearerAuth(client), stream=True, timeout=10
        ) as response:
            assert response.status_code == 200
            assert b"SmartEM_Agent" in b"".join(response.iter_content(64))
    assert resource.statuses() == [401, 200]
    assert dev_idp.hits["token"] == 2


# ---- an enrolled agent: AGENT_PRIVATE_KEY_FILE in place of the secret (docs/agents.md) ----


def test_an_enrolled_agents_config_gets_tokens_signed_with_its_key(
    dev_idp: DevIdP, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tokenward.agents import enrol

    caplog.set_level("DEBUG")
    iat = dev_idp.create_initial_access_token(count=1)
    done = enrol(
        dev_idp.base_url, tmp_path, client_id="SmartEM_Agent_ws07", initial_access_token=iat
    )
    config = load_keycloak_config(done.config_file)
    assert config.client_secret == ""
    assert config.private_key_file == str(done.key_file.resolve())
    assert "PRIVATE KEY" not in repr(config)
    with KeycloakClient(config) as client:
        token = client.get_token()
    claims = tw.Verifier(dev_idp.issuer, allowed_azp=["SmartEM_Agent_*"]).verify(token)
    assert claims["azp"] == "SmartEM_Agent_ws07"
    # The config holds no secret: the one token request was authenticated by the key alone.
    assert dev_idp.hits["token"] == 1
    pem = done.key_file.read_text()
    assert pem.splitlines()[1] not in caplog.text


def test_a_config_with_both_a_secret_and_a_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.env"
    key = tmp_path / "agent.pem"
    key.write_text(tw._native.SigningKey.generate("ES256").private_pem())
    path.write_text(
        "KEYCLOAK_URL=http://kc:8080\nKEYCLOAK_REALM=dls\nKEYCLOAK_CLIENT_ID=SmartEM_Agent_x\n"
        f"KEYCLOAK_CLIENT_SECRET=s3cret\nAGENT_PRIVATE_KEY_FILE={key}\n"
    )
    with pytest.raises(KeycloakConfigError) as info:
        load_keycloak_config(path)
    assert info.value.setting == "AGENT_PRIVATE_KEY_FILE"
    assert "s3cret" not in str(info.value)


def test_an_unreadable_key_file_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.env"
    path.write_text(
        "KEYCLOAK_URL=http://kc:8080\nKEYCLOAK_REALM=dls\nKEYCLOAK_CLIENT_ID=SmartEM_Agent_x\n"
        f"AGENT_PRIVATE_KEY_FILE={tmp_path / 'missing.pem'}\n"
    )
    with pytest.raises(KeycloakConfigError) as info:
        load_keycloak_config(path)
    assert info.value.setting == "AGENT_PRIVATE_KEY_FILE"
    assert "missing.pem" in str(info.value)


def test_a_key_file_that_is_not_a_key_is_refused_naming_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "agent.env"
    key = tmp_path / "agent.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    path.write_text(
        "KEYCLOAK_URL=http://kc:8080\nKEYCLOAK_REALM=dls\nKEYCLOAK_CLIENT_ID=SmartEM_Agent_x\n"
        f"AGENT_PRIVATE_KEY_FILE={key}\n"
    )
    with pytest.raises(KeycloakConfigError) as info:
        load_keycloak_config(path)
    assert info.value.setting == "AGENT_PRIVATE_KEY_FILE"
    assert "bm90IGEga2V5" not in str(info.value)
