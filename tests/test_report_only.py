"""The report-only rollout mode: audience and issuer mismatches accepted, counted and logged
(rate-limited); everything else enforced; against the DevIdP over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import tokenward as tw
from _helpers import MakeVerifier, expect_invalid
from tokenward.testing import DevIdP

Clock = Callable[[float], None]


def reports(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("report-only:")]


@pytest.mark.parametrize(
    "value", ["signature", ["audience", "exp"], "azp", "typ", "algorithm", "", [""]]
)
def test_only_audience_and_issuer_can_be_report_only(
    make_verifier: MakeVerifier, value: object
) -> None:
    with pytest.raises(tw.ConfigError, match="report_only"):
        make_verifier(report_only=value)


def test_off_by_default(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier(audience="api")
    expect_invalid(verifier, dev_idp.mint(aud="other"), "bad_audience")
    assert verifier.stats()["report_only_accepted"] == 0


def test_a_warning_once_at_construction(
    make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tokenward")
    make_verifier(audience="api", report_only=("audience", "issuer"))
    warnings = [r for r in caplog.records if "report-only mode" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "audience and issuer" in warnings[0].getMessage()
    assert warnings[0].name.startswith("tokenward.")


def test_audience_mismatch_is_accepted_counted_and_logged(
    dev_idp: DevIdP, make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tokenward")
    verifier = make_verifier(audience="api", report_only="audience")
    claims = verifier.verify(dev_idp.mint(sub="r1", aud="other-app"))
    assert claims["sub"] == "r1"
    assert verifier.stats()["report_only_accepted"] == 1
    assert verifier.verify(dev_idp.mint(aud="api"))["aud"] == "api"
    assert verifier.stats()["report_only_accepted"] == 1, "a matching token is not counted"
    (line,) = reports(caplog)
    assert "audience" in line and "'other-app'" not in line and '"other-app"' in line
    # Still only audience: a foreign issuer is refused.
    expect_invalid(verifier, dev_idp.sign_claims({**claims_of(dev_idp), "iss": "x"}), "bad_issuer")


def claims_of(idp: DevIdP) -> dict[str, object]:
    return idp.make_claims("u1", "SmartEM_User", 300)


def test_issuer_mismatch_is_accepted_when_report_only(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(jwks_uri=dev_idp.jwks_uri, report_only=["issuer"])
    token = dev_idp.sign_claims({**claims_of(dev_idp), "iss": "https://elsewhere/realms/x"})
    assert verifier.verify(token)["iss"] == "https://elsewhere/realms/x"
    assert verifier.stats()["report_only_accepted"] == 1


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"exp": 1000}, "expired"),
        ({"typ": "Refresh"}, "wrong_token_type"),
        ({"azp": "intruder"}, "azp_not_allowed"),
    ],
)
def test_other_checks_are_enforced_even_with_a_reported_mismatch(
    dev_idp: DevIdP, make_verifier: MakeVerifier, claims: dict[str, object], code: str
) -> None:
    verifier = make_verifier(
        audience="api", allowed_azp="SmartEM_User", report_only=("audience", "issuer")
    )
    token = dev_idp.sign_claims({**claims_of(dev_idp), "aud": "other", "iss": "x", **claims})
    expect_invalid(verifier, token, code)
    assert verifier.stats()["report_only_accepted"] == 0


def test_signature_is_never_report_only(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier(audience="api", report_only="audience")
    head, payload, signature = dev_idp.mint(aud="other").split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    expect_invalid(verifier, forged, "bad_signature")


def test_the_report_is_rate_limited_with_a_count(
    dev_idp: DevIdP, make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture, clock: Clock
) -> None:
    caplog.set_level(logging.WARNING, logger="tokenward")
    verifier = make_verifier(audience="api", report_only="audience", cache_size=0)
    for n in range(5):
        verifier.verify(dev_idp.mint(sub=f"s{n}", aud="other"))
    assert len(reports(caplog)) == 1
    clock(11)
    verifier.verify(dev_idp.mint(aud="other"))
    lines = reports(caplog)
    assert len(lines) == 2 and lines[1].endswith("(4 more like it since the last line)")
    assert verifier.stats()["report_only_accepted"] == 6


def test_a_cached_token_is_counted_on_every_verify(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(audience="api", report_only="audience")
    token = dev_idp.mint(aud="other")
    for _ in range(3):
        verifier.verify(token)
    assert verifier.stats()["cache_hits"] == 2
    assert verifier.stats()["report_only_accepted"] == 3


def test_from_env_takes_report_only(dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYCLOAK_URL", dev_idp.base_url)
    monkeypatch.setenv("KEYCLOAK_REALM", "dls")
    monkeypatch.setenv("KEYCLOAK_AUDIENCE", "api")
    verifier = tw.Verifier.from_env(report_only="audience", http_timeout=2)
    assert verifier.verify(dev_idp.mint(aud="other"))["aud"] == "other"
