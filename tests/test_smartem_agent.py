"""tokenward.smartem on the agent side: KeycloakConfig, load_keycloak_config, KeycloakClient."""

import dataclasses
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import tokenward as tw
from tokenward.smartem import (
    KeycloakClient,
    KeycloakConfig,
    KeycloakTokenError,
    load_keycloak_config,
)
from tokenward.testing import DevIdP

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


@pytest.mark.parametrize("fault", ["down", "500", "garbage", "slow"])
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
