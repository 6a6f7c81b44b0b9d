"""The Verifier's public surface: construction and settings errors, from_env(), the exception
classes, the claims it hands back, verify_async(), and what error messages may contain."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import tokenward as tw
from _helpers import MakeVerifier, assert_no_token_leak, expect_invalid
from tokenward.testing import DevIdP

ENV_VARS = (
    "KEYCLOAK_URL",
    "KEYCLOAK_REALM",
    "KEYCLOAK_VERIFY_ISS",
    "KEYCLOAK_ALLOWED_AZP",
    "KEYCLOAK_AUDIENCE",
    "KEYCLOAK_JWKS_URL",
)


@pytest.fixture
def keycloak_env(monkeypatch: pytest.MonkeyPatch, dev_idp: DevIdP) -> Iterator[pytest.MonkeyPatch]:
    """A clean KEYCLOAK_* environment pointing at the DevIdP."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEYCLOAK_URL", dev_idp.base_url)
    monkeypatch.setenv("KEYCLOAK_REALM", "dls")
    yield monkeypatch


# ---- exceptions --------------------------------------------------------------------------------


def test_exception_hierarchy() -> None:
    for cls in (tw.InvalidToken, tw.KeySetUnavailable, tw.TokenRequestError, tw.ConfigError):
        assert issubclass(cls, tw.TokenwardError)
    assert issubclass(tw.ExpiredToken, tw.InvalidToken)
    assert issubclass(tw.ConfigError, ValueError)
    assert not issubclass(tw.KeySetUnavailable, tw.InvalidToken)


# ---- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"leeway": -1}, "leeway"),
        ({"cache_size": -1}, "cache_size"),
        ({"issuer": ""}, "issuer"),
        ({"algorithms": ["RS257"]}, "algorithms"),
        ({"algorithms": ["RS256", "HS256"]}, "algorithms"),
        ({"algorithms": ["none"]}, "algorithms"),
        ({"max_token_bytes": -1}, "max_token_bytes"),
        ({"http_timeout": -1.0}, "http_timeout"),
        ({"jwks_cooldown": -1}, "jwks_cooldown"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_setting(
    make_verifier: MakeVerifier, settings: dict[str, Any], name: str
) -> None:
    with pytest.raises(tw.ConfigError, match=name) as info:
        make_verifier(**settings)
    assert isinstance(info.value, ValueError)


def test_the_issuer_property(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    assert verifier.issuer == dev_idp.issuer


# ---- from_env ----------------------------------------------------------------------------------


def test_from_env_builds_the_realm_issuer(
    keycloak_env: pytest.MonkeyPatch, dev_idp: DevIdP
) -> None:
    v = tw.Verifier.from_env()
    assert v.issuer == dev_idp.issuer
    assert v.verify(dev_idp.mint(sub="env"))["sub"] == "env"


def test_from_env_realm_defaults_to_dls(keycloak_env: pytest.MonkeyPatch, dev_idp: DevIdP) -> None:
    keycloak_env.delenv("KEYCLOAK_REALM")
    assert tw.Verifier.from_env().issuer == dev_idp.issuer


def test_from_env_without_keycloak_url_is_a_config_error(
    keycloak_env: pytest.MonkeyPatch,
) -> None:
    keycloak_env.delenv("KEYCLOAK_URL")
    with pytest.raises(tw.ConfigError, match="KEYCLOAK_URL"):
        tw.Verifier.from_env()


def test_from_env_verify_iss(keycloak_env: pytest.MonkeyPatch, dev_idp: DevIdP) -> None:
    foreign = dev_idp.mint(iss="http://localhost:8080/realms/dls")
    expect_invalid(tw.Verifier.from_env(), foreign, "bad_issuer")
    keycloak_env.setenv("KEYCLOAK_VERIFY_ISS", "false")
    assert tw.Verifier.from_env().verify(foreign)["sub"] == "u1"


def test_from_env_allowed_azp(keycloak_env: pytest.MonkeyPatch, dev_idp: DevIdP) -> None:
    keycloak_env.setenv("KEYCLOAK_ALLOWED_AZP", "SmartEM_User,SmartEM_Agent")
    v = tw.Verifier.from_env()
    assert v.verify(dev_idp.mint(azp="SmartEM_Agent"))["azp"] == "SmartEM_Agent"
    expect_invalid(v, dev_idp.mint(azp="Other"), "azp_not_allowed")


def test_from_env_allowed_azp_prefix_pattern(
    keycloak_env: pytest.MonkeyPatch, dev_idp: DevIdP
) -> None:
    keycloak_env.setenv("KEYCLOAK_ALLOWED_AZP", "SmartEM_User, SmartEM_Agent_*")
    v = tw.Verifier.from_env()
    assert v.verify(dev_idp.mint(azp="SmartEM_Agent_ws07"))["azp"] == "SmartEM_Agent_ws07"
    assert v.verify(dev_idp.mint(azp="SmartEM_User"))["azp"] == "SmartEM_User"
    expect_invalid(v, dev_idp.mint(azp="SmartEM_Agent"), "azp_not_allowed")
    keycloak_env.setenv("KEYCLOAK_ALLOWED_AZP", "SmartEM_*_Agent")
    with pytest.raises(tw.ConfigError, match="KEYCLOAK_ALLOWED_AZP"):
        tw.Verifier.from_env()


def test_from_env_audience(keycloak_env: pytest.MonkeyPatch, dev_idp: DevIdP) -> None:
    keycloak_env.setenv("KEYCLOAK_AUDIENCE", "smartem-api")
    v = tw.Verifier.from_env()
    assert v.verify(dev_idp.mint(aud=["account", "smartem-api"]))["sub"] == "u1"
    expect_invalid(v, dev_idp.mint(), "bad_audience")


def test_from_env_jwks_url_when_the_issuer_host_is_not_reachable(
    keycloak_env: pytest.MonkeyPatch, dev_idp: DevIdP
) -> None:
    # SmartEM's dev setup: tokens say iss=http://keycloak.invalid:8080/..., keys are fetched
    # from another address. ".invalid" never resolves, so any use of the issuer URL would fail.
    keycloak_env.setenv("KEYCLOAK_URL", "http://keycloak.invalid:8080")
    keycloak_env.setenv("KEYCLOAK_JWKS_URL", dev_idp.jwks_uri)
    v = tw.Verifier.from_env()
    assert v.issuer == "http://keycloak.invalid:8080/realms/dls"
    token = dev_idp.mint(iss=v.issuer)
    assert v.verify(token)["iss"] == v.issuer
    assert dev_idp.hits["jwks"] == 1
    expect_invalid(v, dev_idp.mint(), "bad_issuer")


# ---- claims ------------------------------------------------------------------------------------


def test_claims_are_a_fresh_dict_each_call(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    token = dev_idp.mint(realm_access={"roles": ["viewer"]})
    first = verifier.verify(token)
    first["sub"] = "mallory"
    first["realm_access"]["roles"].append("admin")
    first["injected"] = True
    second = verifier.verify(token)  # a cache hit
    assert verifier.stats()["cache_hits"] == 1
    assert second["sub"] == "u1"
    assert second["realm_access"]["roles"] == ["viewer"]
    assert "injected" not in second
    assert second is not first
    assert type(second) is dict


# ---- messages ----------------------------------------------------------------------------------


def test_error_messages_never_contain_the_token(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    tokens = {
        "expired": dev_idp.mint(expires_in=-3600),
        "bad_issuer": dev_idp.mint(iss="http://evil.example/realms/dls"),
        "unknown_kid": dev_idp.mint(kid="forged-kid"),
        "alg_not_allowed": dev_idp.mint(headers={"alg": "HS256"}),
        "wrong_token_type": dev_idp.mint(typ="Refresh"),
    }
    for code, token in tokens.items():
        err = expect_invalid(verifier, token, code)
        assert token not in str(err)
        assert err.code == code
    header, payload, sig = dev_idp.mint().split(".")
    broken = f"{header}.{payload}.{sig[:-8]}"
    err = expect_invalid(verifier, broken, "bad_signature")
    assert_no_token_leak(err, broken)


# ---- verify_async ------------------------------------------------------------------------------


async def test_verify_async_fetches_keys_and_verifies(
    dev_idp: DevIdP, verifier: tw.Verifier
) -> None:
    claims = await verifier.verify_async(dev_idp.mint(sub="async"))
    assert claims["sub"] == "async"
    assert dev_idp.hits["jwks"] == 1
    many = await asyncio.gather(
        *(verifier.verify_async(dev_idp.mint(sub=f"u{i}")) for i in range(20))
    )
    assert [c["sub"] for c in many] == [f"u{i}" for i in range(20)]
    assert dev_idp.hits["jwks"] == 1


async def test_verify_async_raises_the_same_errors(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    with pytest.raises(tw.ExpiredToken):
        await verifier.verify_async(dev_idp.mint(expires_in=-3600))
    with pytest.raises(tw.InvalidToken) as info:
        await verifier.verify_async(dev_idp.mint(aud=None, typ="ID"))
    assert info.value.code == "wrong_token_type"
    dev_idp.set_fault("jwks", "down")
    dev_idp.set_fault("discovery", "down")
    with pytest.raises(tw.KeySetUnavailable):
        await tw.Verifier(dev_idp.issuer, http_timeout=2.0).verify_async(dev_idp.mint())


async def test_verify_async_does_not_block_the_event_loop_during_a_fetch(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier(http_timeout=30.0)
    assert (await v.verify_async(dev_idp.mint()))["sub"] == "u1"
    dev_idp.rotate_keys()
    dev_idp.set_fault("jwks", "slow")
    task = asyncio.ensure_future(v.verify_async(dev_idp.mint(sub="rotated")))
    try:
        # This await completes only if the loop keeps running while the refetch is held.
        arrived = await asyncio.wait_for(
            asyncio.to_thread(dev_idp.in_flight.wait_for, "jwks", 1), timeout=20
        )
        assert arrived
        assert not task.done()
    finally:
        dev_idp.set_fault("jwks", None)
    assert (await task)["sub"] == "rotated"
    assert dev_idp.hits["jwks"] == 2
