"""`from_env` at the Rust/Python boundary: the environment is read in Rust only (and Python's
changes to it reach Rust), the keyword arguments are those of the constructor and win, and the
result is an instance of the class it was called on."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tokenward as tw
from tokenward import _native
from tokenward._native import SigningKey
from tokenward.testing import DevIdP

SECRET = "from-env-secret-51d7"
VARIABLES = (
    "KEYCLOAK_URL",
    "KEYCLOAK_REALM",
    "KEYCLOAK_VERIFY_ISS",
    "KEYCLOAK_ALLOWED_AZP",
    "KEYCLOAK_AUDIENCE",
    "KEYCLOAK_JWKS_URL",
    "AGENT_CLIENT_ID",
    "KEYCLOAK_CLIENT_ID",
    "AGENT_CLIENT_SECRET",
    "KEYCLOAK_CLIENT_SECRET",
    "AGENT_PRIVATE_KEY_FILE",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, dev_idp: DevIdP) -> Iterator[pytest.MonkeyPatch]:
    """No tokenward variable but KEYCLOAK_URL, pointing at the DevIdP (realm "dls")."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEYCLOAK_URL", dev_idp.base_url)
    yield monkeypatch


@pytest.fixture
def agent(dev_idp: DevIdP) -> str:
    dev_idp.add_client("agent", secret=SECRET, token_lifetime=300)
    return "agent"


class _Unconvertible:
    """A value no setting accepts."""


# ---- the environment is Rust's, and Python's changes reach it -----------------------------------


def test_os_environ_assignment_and_deletion_reach_rust(env: pytest.MonkeyPatch) -> None:
    url = os.environ.pop("KEYCLOAK_URL")
    try:
        with pytest.raises(tw.ConfigError, match="KEYCLOAK_URL"):
            tw.Verifier.from_env()
        os.environ["KEYCLOAK_URL"] = "http://127.0.0.1:1"
        assert tw.Verifier.from_env().issuer == "http://127.0.0.1:1/realms/dls"
        del os.environ["KEYCLOAK_URL"]
        with pytest.raises(tw.ConfigError, match="KEYCLOAK_URL"):
            tw.Verifier.from_env()
    finally:
        os.environ["KEYCLOAK_URL"] = url


def test_monkeypatch_setenv_and_delenv_reach_rust(env: pytest.MonkeyPatch) -> None:
    env.setenv("KEYCLOAK_REALM", "other")
    assert tw.Verifier.from_env().issuer.endswith("/realms/other")
    env.delenv("KEYCLOAK_REALM")
    assert tw.Verifier.from_env().issuer.endswith("/realms/dls")


def test_the_environment_is_not_read_through_os_environ(
    env: pytest.MonkeyPatch, dev_idp: DevIdP, agent: str
) -> None:
    # Set in the C environment only: os.environ (a copy made at start-up) never holds it.
    os.putenv("AGENT_CLIENT_ID", agent)
    os.putenv("AGENT_CLIENT_SECRET", SECRET)
    try:
        assert "AGENT_CLIENT_SECRET" not in os.environ
        client = tw.TokenClient.from_env(timeout=2)
        assert client.client_id == agent
        assert client.get_token()
    finally:
        os.unsetenv("AGENT_CLIENT_ID")
        os.unsetenv("AGENT_CLIENT_SECRET")


def test_no_settings_dict_crosses_the_boundary() -> None:
    assert not [name for name in dir(_native) if "env_settings" in name]


# ---- the result is an instance of the class it was called on -----------------------------------


def test_from_env_returns_the_python_classes(
    env: pytest.MonkeyPatch, dev_idp: DevIdP, agent: str
) -> None:
    verifier = tw.Verifier.from_env()
    assert type(verifier) is tw.Verifier
    assert verifier.verify(dev_idp.mint(sub="env"))["sub"] == "env"
    env.setenv("AGENT_CLIENT_ID", agent)
    env.setenv("AGENT_CLIENT_SECRET", SECRET)
    client = tw.TokenClient.from_env(timeout=2)
    assert type(client) is tw.TokenClient
    assert client.get_token()


def test_from_env_on_a_subclass_makes_the_subclass(env: pytest.MonkeyPatch) -> None:
    class MyVerifier(tw.Verifier):
        pass

    class MyClient(tw.TokenClient):
        pass

    assert type(MyVerifier.from_env()) is MyVerifier
    env.setenv("AGENT_CLIENT_ID", "agent")
    assert type(MyClient.from_env(client_secret="given")) is MyClient


def test_the_repr_of_a_client_from_the_environment_shows_no_secret(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("AGENT_CLIENT_ID", "agent")
    env.setenv("AGENT_CLIENT_SECRET", SECRET)
    client = tw.TokenClient.from_env()
    assert SECRET not in repr(client) and SECRET not in str(client)


# ---- keyword arguments: the constructor's, and they win ----------------------------------------


def _keywords(cls: type) -> list[str]:
    return list(inspect.signature(cls).parameters)


@pytest.mark.parametrize("name", _keywords(_native.Verifier))
def test_verifier_from_env_takes_each_constructor_keyword_as_the_constructor_does(
    env: pytest.MonkeyPatch, name: str
) -> None:
    bad = {name: _Unconvertible()}
    with pytest.raises(Exception) as by_constructor:
        tw.Verifier(**{"issuer": "http://127.0.0.1:1", **bad})
    with pytest.raises(Exception) as by_from_env:
        tw.Verifier.from_env(**bad)
    assert type(by_from_env.value) is type(by_constructor.value)
    assert "unexpected keyword" not in str(by_from_env.value)


@pytest.mark.parametrize("name", _keywords(_native.TokenClient))
def test_token_client_from_env_takes_each_constructor_keyword_as_the_constructor_does(
    env: pytest.MonkeyPatch, name: str
) -> None:
    env.setenv("AGENT_CLIENT_ID", "agent")
    env.setenv("AGENT_CLIENT_SECRET", SECRET)
    bad = {name: _Unconvertible()}
    base: dict[str, Any] = {"client_id": "agent", "client_secret": SECRET}
    with pytest.raises(Exception) as by_constructor:
        tw.TokenClient(**{**base, **bad})
    with pytest.raises(Exception) as by_from_env:
        tw.TokenClient.from_env(**bad)
    assert type(by_from_env.value) is type(by_constructor.value)
    assert "unexpected keyword" not in str(by_from_env.value)
    assert SECRET not in str(by_from_env.value)


def test_an_unknown_keyword_is_a_type_error(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="jwks_tl"):
        tw.Verifier.from_env(jwks_tl=1)
    env.setenv("AGENT_CLIENT_ID", "agent")
    with pytest.raises(TypeError, match="secret"):
        tw.TokenClient.from_env(client_secret="given", secret="x")


def test_keywords_win_over_the_environment(env: pytest.MonkeyPatch, dev_idp: DevIdP) -> None:
    env.setenv("KEYCLOAK_JWKS_URL", "http://127.0.0.1:1/certs")
    verifier = tw.Verifier.from_env(
        jwks_uri=dev_idp.jwks_uri, jwks_ttl=120.5, jwks_cooldown=0.5, leeway=0
    )
    assert verifier.verify(dev_idp.mint())["sub"] == "u1"
    assert tw.Verifier.from_env(issuer="http://other.example").issuer == "http://other.example"


def test_a_credential_in_code_replaces_the_environments_and_its_method(
    env: pytest.MonkeyPatch, dev_idp: DevIdP, agent: str, tmp_path: Path
) -> None:
    key = SigningKey.generate("ES256")
    path = tmp_path / "agent.pem"
    path.write_text(key.private_pem())
    env.setenv("AGENT_CLIENT_ID", agent)
    env.setenv("AGENT_PRIVATE_KEY_FILE", str(path))
    assert tw.TokenClient.from_env().auth_method == "private_key_jwt"
    client = tw.TokenClient.from_env(client_secret=SECRET, timeout=2)
    assert client.auth_method == "client_secret_post"
    assert client.get_token()
