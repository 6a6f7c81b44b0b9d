"""The names of SmartEM's own modules that its tests reach for, kept in `tokenward.smartem` and
behaving as SmartEM's did; and the configuration checks (typos, a realm in KEYCLOAK_URL)."""

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import tokenward as tw
from _uvicorn import serve
from fastapi import Depends, FastAPI
from tokenward import smartem
from tokenward._keycloak_env import KNOWN_VARIABLES
from tokenward.testing import DevIdP

TIMEOUT = 10
SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.fixture
def env(dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.startswith(("KEYCLOAK_", "AGENT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KEYCLOAK_URL", dev_idp.base_url)
    smartem.reset_verifier()
    yield monkeypatch
    smartem.reset_verifier()


@pytest.fixture
def url(env: pytest.MonkeyPatch) -> Iterator[str]:
    app = FastAPI(dependencies=[Depends(smartem.verify_token)])

    @app.get("/acquisitions")
    async def acquisitions() -> dict[str, str]:
        return {"ok": "yes"}

    with serve(app) as base:
        yield f"{base}/acquisitions"


def get(url: str, token: str) -> requests.Response:
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)


def test_setting_jwks_client_to_none_rebuilds_from_the_environment(
    url: str, env: pytest.MonkeyPatch, dev_idp: DevIdP
) -> None:
    """SmartEM's fixture resets `_jwks_client` with monkeypatch; the next request reads the
    environment again."""
    token = dev_idp.mint(azp="SmartEM_Agent")
    assert get(url, token).status_code == 200
    built = smartem._jwks_client
    assert isinstance(built, tw.Verifier)
    assert smartem._get_jwks_client() is built

    env.setenv("KEYCLOAK_ALLOWED_AZP", "SmartEM_User")
    assert get(url, token).status_code == 200, "the environment is read once per verifier"
    env.setattr(smartem, "_jwks_client", None)
    response = get(url, token)
    assert response.status_code == 401
    assert response.json() == {"detail": "Token azp not permitted"}
    assert smartem._jwks_client is not built


def test_get_jwks_client_without_keycloak_url(env: pytest.MonkeyPatch) -> None:
    env.delenv("KEYCLOAK_URL")
    env.setattr(smartem, "_jwks_client", None)
    with pytest.raises(RuntimeError, match="KEYCLOAK_URL") as info:
        smartem._get_jwks_client()
    assert isinstance(info.value, tw.ConfigError) and isinstance(info.value, ValueError)
    assert info.value.setting == "KEYCLOAK_URL"
    assert smartem._jwks_client is None


@pytest.mark.parametrize(
    "base", ["https://identity-test.example", "https://identity-test.example/"]
)
def test_issuer_and_jwks_url(env: pytest.MonkeyPatch, base: str) -> None:
    env.setenv("KEYCLOAK_URL", base)
    env.setenv("KEYCLOAK_REALM", "dls")
    assert smartem._issuer() == "https://identity-test.example/realms/dls"
    assert smartem._jwks_url() == (
        "https://identity-test.example/realms/dls/protocol/openid-connect/certs"
    )
    env.setenv("KEYCLOAK_JWKS_URL", "http://keycloak:8080/keys")
    assert smartem._jwks_url() == "http://keycloak:8080/keys"


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (None, frozenset()),
        ("", frozenset()),
        (" , ", frozenset()),
        ("SmartEM_Agent", {"SmartEM_Agent"}),
        (" SmartEM_User , SmartEM_Agent ,", {"SmartEM_User", "SmartEM_Agent"}),
    ],
)
def test_allowed_azps(env: pytest.MonkeyPatch, raw: str | None, parsed: frozenset[str]) -> None:
    if raw is not None:
        env.setenv("KEYCLOAK_ALLOWED_AZP", raw)
    assert smartem._allowed_azps() == parsed


def test_allowed_azps_is_what_the_verifier_enforces(
    url: str, env: pytest.MonkeyPatch, dev_idp: DevIdP
) -> None:
    env.setenv("KEYCLOAK_ALLOWED_AZP", " SmartEM_User , ,SmartEM_Agent ")
    for azp in sorted(smartem._allowed_azps()):
        assert get(url, dev_idp.mint(azp=azp)).status_code == 200, azp
    for azp in ("", " SmartEM_User", "smartem_agent", "Other"):
        assert get(url, dev_idp.mint(azp=azp)).status_code == 401, azp


# ---- typos and a realm in KEYCLOAK_URL ----------------------------------------------------------


def test_known_variables_are_the_cores() -> None:
    """The names can't be asked of the extension, so they are listed in Python too: in step."""
    source = (SRC / "keycloak.rs").read_text(encoding="utf-8")
    assert set(re.findall(r'"((?:KEYCLOAK|AGENT)_[A-Z_]+)"', source)) == KNOWN_VARIABLES


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_typo_in_the_environment_is_warned_once_at_configuration(
    url: str, env: pytest.MonkeyPatch, dev_idp: DevIdP, caplog: pytest.LogCaptureFixture
) -> None:
    env.setenv("KEYCLOAK_ALLOWED_AZPS", "SmartEM_User")
    env.setenv("KEYCLOAK_USER", "admin")  # Keycloak's own container's: not a typo of ours
    with caplog.at_level(logging.WARNING, logger="tokenward.keycloak"):
        assert get(url, dev_idp.mint(azp="anything")).status_code == 200
        assert get(url, dev_idp.mint(azp="other")).status_code == 200
        smartem.reset_verifier()
        assert get(url, dev_idp.mint(azp="third")).status_code == 200
    assert warnings_of(caplog) == [
        (
            "the environment sets KEYCLOAK_ALLOWED_AZPS, which tokenward does not read: "
            "did you mean KEYCLOAK_ALLOWED_AZP?"
        )
    ]


@pytest.mark.parametrize(
    ("typo", "known"),
    [
        ("KEYCLOAK_RELAM", "KEYCLOAK_REALM"),
        ("AGENT_CLIENT_SECRT", "AGENT_CLIENT_SECRET"),
        ("Keycloak_Url", "KEYCLOAK_URL"),
    ],
)
def test_from_env_warns_about_typos(
    env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, typo: str, known: str
) -> None:
    env.setenv(typo, "x")
    env.setenv("AGENT_CLIENT_ID", "agent")
    env.setenv("AGENT_CLIENT_SECRET", "secret")
    with caplog.at_level(logging.WARNING, logger="tokenward.keycloak"):
        tw.TokenClient.from_env()
        tw.Verifier.from_env()
    assert warnings_of(caplog) == [
        f"the environment sets {typo}, which tokenward does not read: did you mean {known}?"
    ]


def test_a_realm_in_keycloak_url_is_refused_by_the_backend(
    url: str, env: pytest.MonkeyPatch, dev_idp: DevIdP, caplog: pytest.LogCaptureFixture
) -> None:
    env.setenv("KEYCLOAK_URL", dev_idp.issuer)  # .../realms/dls
    with caplog.at_level(logging.ERROR, logger="tokenward.smartem"):
        response = get(url, dev_idp.mint())
    assert response.status_code == 500
    assert response.json() == {"detail": "Authentication is not configured"}
    assert any(
        "KEYCLOAK_URL" in r.getMessage() and "already contains a realm path" in r.getMessage()
        for r in caplog.records
    )
    with pytest.raises(RuntimeError, match="KEYCLOAK_URL .* already contains a realm path"):
        smartem._get_jwks_client()


def test_a_realm_in_keycloak_url_is_refused_by_from_env(
    env: pytest.MonkeyPatch, dev_idp: DevIdP
) -> None:
    env.setenv("KEYCLOAK_URL", dev_idp.issuer + "/")
    env.setenv("AGENT_CLIENT_ID", "agent")
    env.setenv("AGENT_CLIENT_SECRET", "secret")
    for from_env in (tw.Verifier.from_env, tw.TokenClient.from_env):
        with pytest.raises(tw.ConfigError, match=re.escape(repr(dev_idp.base_url))) as info:
            from_env()
        assert info.value.setting == "KEYCLOAK_URL"
    # Given explicitly, the URL from the environment is not used, so not refused.
    assert tw.Verifier.from_env(issuer=dev_idp.issuer).issuer == dev_idp.issuer
    assert tw.TokenClient.from_env(token_url=dev_idp.token_url).token_url == dev_idp.token_url
