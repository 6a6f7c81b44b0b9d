"""The verification policy of docs/architecture.md, rule by rule: what is accepted, what is
rejected and with which `.code`, under the default settings and under each setting that changes
a rule."""

from __future__ import annotations

import time
from typing import Any

import pytest
import tokenward as tw
from _helpers import MakeVerifier, claims_of, expect_invalid, header_of
from tokenward.testing import DevIdP

ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]


# ---- signatures and algorithms -----------------------------------------------------------------


def test_a_keycloak_token_verifies_and_its_claims_come_back(
    dev_idp: DevIdP, verifier: tw.Verifier
) -> None:
    token = dev_idp.mint(realm_access={"roles": ["viewer"]}, groups=["/viewers"])
    assert verifier.verify(token) == claims_of(token)


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_every_asymmetric_algorithm_is_accepted(
    dev_idp: DevIdP, verifier: tw.Verifier, alg: str
) -> None:
    token = dev_idp.mint(alg=alg, sub=f"user-{alg}")
    assert header_of(token)["alg"] == alg
    assert verifier.verify(token)["sub"] == f"user-{alg}"


def test_algorithms_setting_limits_the_accepted_algorithms(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier(algorithms=["ES256", "EdDSA"])
    assert v.verify(dev_idp.mint(alg="ES256"))["sub"] == "u1"
    assert v.verify(dev_idp.mint(alg="EdDSA"))["sub"] == "u1"
    expect_invalid(v, dev_idp.mint(alg="RS256"), "alg_not_allowed")
    expect_invalid(v, dev_idp.mint(alg="ES384"), "alg_not_allowed")


# ---- exp, nbf, iat and leeway ------------------------------------------------------------------


def test_exp_is_required(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    expect_invalid(verifier, dev_idp.mint(exp=None), "missing_claim")


def test_required_claims_setting(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    strict = make_verifier(required_claims=("exp", "sub", "email"))
    assert strict.verify(dev_idp.mint())["email"] == "u1@example.org"
    expect_invalid(strict, dev_idp.mint(sub=None), "missing_claim")
    expect_invalid(strict, dev_idp.mint(email=None), "missing_claim")
    relaxed = make_verifier(required_claims=())
    assert relaxed.verify(dev_idp.mint(exp=None, sub="no-exp"))["sub"] == "no-exp"


@pytest.mark.parametrize("exp", ["4102444800", [4102444800], {"t": 4102444800}, True])
def test_exp_must_be_numeric(dev_idp: DevIdP, verifier: tw.Verifier, exp: Any) -> None:
    expect_invalid(verifier, dev_idp.mint(exp=exp), "bad_claim")


def test_a_fractional_exp_is_numeric(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    token = dev_idp.mint(exp=time.time() + 300.5)
    assert verifier.verify(token)["exp"] == claims_of(token)["exp"]


def test_expired_beyond_leeway_raises_expired_token(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    err = expect_invalid(verifier, dev_idp.mint(expires_in=-120), "expired")
    assert isinstance(err, tw.ExpiredToken)


def test_expired_within_leeway_is_accepted(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    now = int(time.time())
    assert verifier.verify(dev_idp.mint(iat=now - 300, exp=now - 30))["sub"] == "u1"


def test_leeway_setting(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    now = int(time.time())
    token = dev_idp.mint(iat=now - 300, exp=now - 30)
    assert make_verifier(leeway=120).verify(token)["sub"] == "u1"
    err = expect_invalid(make_verifier(leeway=0), token, "expired")
    assert isinstance(err, tw.ExpiredToken)


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_nbf_or_iat_in_the_future_beyond_leeway_is_not_yet_valid(
    dev_idp: DevIdP, verifier: tw.Verifier, claim: str
) -> None:
    now = int(time.time())
    expect_invalid(verifier, dev_idp.mint(**{claim: now + 600}), "not_yet_valid")
    assert verifier.verify(dev_idp.mint(**{claim: now + 20}))["sub"] == "u1"
    assert verifier.verify(dev_idp.mint(**{claim: now - 20}))["sub"] == "u1"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_nbf_and_iat_must_be_numeric(dev_idp: DevIdP, verifier: tw.Verifier, claim: str) -> None:
    expect_invalid(verifier, dev_idp.mint(**{claim: str(int(time.time()))}), "bad_claim")


def test_exp_before_iat_is_a_bad_claim_even_inside_the_leeway(
    dev_idp: DevIdP, verifier: tw.Verifier
) -> None:
    now = int(time.time())
    # Both within the 60 s leeway taken alone; together they are a contradiction.
    expect_invalid(verifier, dev_idp.mint(iat=now + 30, exp=now + 10), "bad_claim")
    assert verifier.verify(dev_idp.mint(iat=now + 10, exp=now + 10))["sub"] == "u1"


def test_max_lifetime_refuses_a_token_issued_to_live_too_long(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier(max_lifetime=3600)
    now = int(time.time())
    assert v.verify(dev_idp.mint(iat=now, exp=now + 3600))["sub"] == "u1"
    expect_invalid(v, dev_idp.mint(iat=now, exp=now + 3601), "lifetime_too_long")
    # Still valid now, but issued long ago for a long life: the ceiling is about exp - iat.
    expect_invalid(v, dev_idp.mint(iat=now - 7000, exp=now + 100), "lifetime_too_long")
    # No ceiling by default.
    assert make_verifier().verify(dev_idp.mint(expires_in=86400 * 30))["sub"] == "u1"


def test_max_lifetime_skips_a_token_without_iat_unless_iat_is_required(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    token = dev_idp.mint(iat=None, expires_in=7200)
    assert make_verifier(max_lifetime=60).verify(token)["sub"] == "u1"
    strict = make_verifier(max_lifetime=60, required_claims=("exp", "iat"))
    expect_invalid(strict, token, "missing_claim")


@pytest.mark.parametrize("value", [0, -5])
def test_max_lifetime_must_be_positive(make_verifier: MakeVerifier, value: int) -> None:
    with pytest.raises(tw.ConfigError, match="max_lifetime"):
        make_verifier(max_lifetime=value)


# ---- sub and jti -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "value"),
    [("sub", 42), ("sub", ["u1"]), ("sub", {"id": "u1"}), ("jti", 7), ("jti", False)],
)
def test_sub_and_jti_must_be_strings(
    dev_idp: DevIdP, verifier: tw.Verifier, claim: str, value: Any
) -> None:
    expect_invalid(verifier, dev_idp.mint(**{claim: value}), "bad_claim")


def test_sub_and_jti_may_be_absent(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    claims = verifier.verify(dev_idp.mint(sub=None, jti=None))
    assert "sub" not in claims and "jti" not in claims


# ---- iss ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_iss",
    [
        lambda iss: "http://127.0.0.1:1/realms/dls",
        lambda iss: iss.replace("/realms/dls", "/realms/other"),
        lambda iss: iss + ".evil",
        lambda iss: iss + "/",
        lambda iss: iss + " ",
        lambda iss: iss.upper(),
        lambda iss: iss.replace("http://", "https://"),
        lambda iss: iss[:-1],
    ],
    ids=[
        "other-host",
        "other-realm",
        "suffix-evil",
        "trailing-slash",
        "space",
        "case",
        "https",
        "prefix",
    ],
)
def test_iss_must_match_exactly(dev_idp: DevIdP, verifier: tw.Verifier, make_iss: Any) -> None:
    expect_invalid(verifier, dev_idp.mint(iss=make_iss(dev_idp.issuer)), "bad_issuer")


@pytest.mark.parametrize("iss", [None, ["ISSUER"], 1])
def test_iss_missing_or_not_a_string_is_rejected(
    dev_idp: DevIdP, verifier: tw.Verifier, iss: Any
) -> None:
    if iss == ["ISSUER"]:
        iss = [dev_idp.issuer]
    expect_invalid(verifier, dev_idp.mint(iss=iss), {"bad_issuer", "missing_claim", "bad_claim"})


def test_verify_issuer_false_skips_the_issuer_check(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier(verify_issuer=False)
    assert v.verify(dev_idp.mint(iss="http://keycloak:8080/realms/dls"))["sub"] == "u1"


# ---- aud ---------------------------------------------------------------------------------------


def test_aud_is_not_checked_without_an_audience(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    assert verifier.verify(dev_idp.mint(aud="anything"))["aud"] == "anything"
    assert "aud" not in verifier.verify(dev_idp.mint(aud=None))


@pytest.mark.parametrize("aud", ["tw-api", ["account", "tw-api"], ["tw-api"]])
def test_aud_containing_the_audience_is_accepted(
    dev_idp: DevIdP, make_verifier: MakeVerifier, aud: Any
) -> None:
    assert make_verifier(audience="tw-api").verify(dev_idp.mint(aud=aud))["aud"] == aud


@pytest.mark.parametrize(
    "aud",
    ["account", ["account", "other"], [], "tw-api-evil", "TW-API", "tw-api ", None, 7],
)
def test_aud_without_the_audience_is_rejected(
    dev_idp: DevIdP, make_verifier: MakeVerifier, aud: Any
) -> None:
    expect_invalid(make_verifier(audience="tw-api"), dev_idp.mint(aud=aud), "bad_audience")


def test_a_list_of_audiences_accepts_any_of_them(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier(audience=["svc-a", "svc-b"])
    assert v.verify(dev_idp.mint(aud="svc-b"))["sub"] == "u1"
    assert v.verify(dev_idp.mint(aud=["account", "svc-a"]))["sub"] == "u1"
    expect_invalid(v, dev_idp.mint(aud=["svc-c"]), "bad_audience")


# ---- azp ---------------------------------------------------------------------------------------


def test_azp_is_not_checked_without_an_allowlist(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    assert verifier.verify(dev_idp.mint(azp="whoever"))["azp"] == "whoever"


@pytest.mark.parametrize("azp", ["SmartEM_User", "SmartEM_Agent"])
def test_allowed_azp_is_accepted(dev_idp: DevIdP, make_verifier: MakeVerifier, azp: str) -> None:
    v = make_verifier(allowed_azp=["SmartEM_User", "SmartEM_Agent"])
    assert v.verify(dev_idp.mint(azp=azp))["azp"] == azp


@pytest.mark.parametrize("azp", ["Evil_App", "smartem_user", "SmartEM_User ", None, 1])
def test_azp_not_on_the_allowlist_is_rejected(
    dev_idp: DevIdP, make_verifier: MakeVerifier, azp: Any
) -> None:
    v = make_verifier(allowed_azp=["SmartEM_User", "SmartEM_Agent"])
    expect_invalid(v, dev_idp.mint(azp=azp), "azp_not_allowed")


@pytest.mark.parametrize(
    ("azp", "accepted"),
    [
        ("SmartEM_Agent_ws01", True),
        ("SmartEM_Agent_", True),
        ("SmartEM_User", True),
        ("SmartEM_Agent", False),
        ("smartem_agent_ws01", False),
        ("X_SmartEM_Agent_ws01", False),
        (None, False),
    ],
)
def test_allowed_azp_prefix_patterns_match_per_workstation_clients(
    dev_idp: DevIdP, make_verifier: MakeVerifier, azp: Any, accepted: bool
) -> None:
    v = make_verifier(allowed_azp=["SmartEM_User", "SmartEM_Agent_*"])
    token = dev_idp.mint(azp=azp)
    if accepted:
        assert v.verify(token)["azp"] == azp
    else:
        expect_invalid(v, token, "azp_not_allowed")


@pytest.mark.parametrize("bad", [["*"], ["SmartEM_*_Agent"], ["*Agent"], ["ok", "a**"]])
def test_allowed_azp_refuses_a_star_anywhere_but_the_end(
    dev_idp: DevIdP, make_verifier: MakeVerifier, bad: list[str]
) -> None:
    with pytest.raises(tw.ConfigError, match="allowed_azp"):
        make_verifier(allowed_azp=bad)


# ---- typ ---------------------------------------------------------------------------------------


def test_bearer_or_absent_typ_is_an_access_token(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    assert verifier.verify(dev_idp.mint())["typ"] == "Bearer"
    assert "typ" not in verifier.verify(dev_idp.mint(typ=None))


@pytest.mark.parametrize("typ", ["ID", "Refresh", "Offline", "bearer", "Bearer ", "JWT", 1])
def test_other_token_types_are_rejected(dev_idp: DevIdP, verifier: tw.Verifier, typ: Any) -> None:
    expect_invalid(verifier, dev_idp.mint(typ=typ), "wrong_token_type")


def test_token_types_setting(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    id_only = make_verifier(token_types=["ID"])
    assert id_only.verify(dev_idp.mint(typ="ID"))["typ"] == "ID"
    expect_invalid(id_only, dev_idp.mint(), "wrong_token_type")
    unchecked = make_verifier(token_types=None)
    assert unchecked.verify(dev_idp.mint(typ="Refresh"))["typ"] == "Refresh"


# ---- size --------------------------------------------------------------------------------------


def test_max_token_bytes_boundary(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    token = dev_idp.mint()
    assert make_verifier(max_token_bytes=len(token)).verify(token)["sub"] == "u1"
    expect_invalid(make_verifier(max_token_bytes=len(token) - 1), token, "too_large")


def test_a_genuine_token_over_the_default_limit_is_too_large(
    dev_idp: DevIdP, verifier: tw.Verifier
) -> None:
    token = dev_idp.mint(padding="x" * 16384)
    expect_invalid(verifier, token, "too_large")
    roomy = dev_idp.mint(padding="x" * 8000)
    assert verifier.verify(roomy)["sub"] == "u1"


# ---- the verified-token cache ------------------------------------------------------------------


def test_a_repeat_verify_is_a_cache_hit(dev_idp: DevIdP, verifier: tw.Verifier) -> None:
    token = dev_idp.mint()
    first = verifier.verify(token)
    assert verifier.stats()["cache_hits"] == 0
    assert verifier.verify(token) == first
    stats = verifier.stats()
    assert stats["cache_hits"] == 1
    assert stats["verified"] == 2


def test_cache_size_zero_turns_the_cache_off(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    v = make_verifier(cache_size=0)
    token = dev_idp.mint()
    for _ in range(3):
        assert v.verify(token)["sub"] == "u1"
    assert v.stats()["cache_hits"] == 0
    assert v.stats()["verified"] == 3
