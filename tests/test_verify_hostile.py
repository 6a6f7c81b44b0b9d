"""Hostile tokens at the JOSE level: forged algorithms, key confusion, header tricks, broken
encodings and shapes, substituted signatures, oversized input. Each must be rejected with the
right `.code` (claim-level misuse — expired, wrong iss/aud/azp/typ, bad claim types — is covered
rule by rule in test_verify_policy.py).

Where it can, each token carries exactly one defect: it is signed for real by the realm's key
(`SigningKey.sign` signs with its own alg whatever the header says), so a rejection cannot come
from some other, incidental flaw.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import tokenward as tw
from _helpers import (
    MakeVerifier,
    b64url,
    b64url_decode,
    b64url_json,
    encode,
    expect_invalid,
    header_of,
    hmac_token,
    rsa_public_pems,
    with_claims,
)
from tokenward._native import SigningKey
from tokenward.testing import DevIdP


@pytest.fixture
def primed(dev_idp: DevIdP, verifier: tw.Verifier) -> tw.Verifier:
    """The default verifier, with the realm's keys already fetched."""
    assert verifier.verify(dev_idp.mint())["sub"] == "u1"
    return verifier


def _sign_raw(dev_idp: DevIdP, payload: str, header: dict[str, Any] | None = None) -> str:
    """A genuine signature by the realm's current key over an arbitrary payload text."""
    return dev_idp.signing_key().sign(payload, json.dumps(header) if header else None)


# ---- alg: none, HMAC, unknown names ------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", b64url(b"\x00" * 32)], ids=["empty-sig", "some-sig"])
def test_alg_none_in_any_spelling(
    dev_idp: DevIdP, primed: tw.Verifier, alg: str, signature: str
) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": dev_idp.current_kid}
    expect_invalid(primed, encode(header, dev_idp.make_claims(), signature), "alg_not_allowed")
    no_kid = {"alg": alg, "typ": "JWT"}
    expect_invalid(primed, encode(no_kid, dev_idp.make_claims(), signature), "alg_not_allowed")


def _hmac_secrets(jwk: dict[str, Any]) -> dict[str, bytes]:
    pems = rsa_public_pems(jwk)
    return {
        "spki-pem": pems["spki"].encode(),
        "spki-pem-no-newline": pems["spki"].rstrip("\n").encode(),
        "pkcs1-pem": pems["pkcs1"].encode(),
        "jwk-n-bytes": b64url_decode(jwk["n"]),
        "jwk-n-text": jwk["n"].encode(),
        "jwk-json": json.dumps(jwk).encode(),
    }


@pytest.mark.parametrize(
    ("alg", "form"),
    [
        ("HS256", form)
        for form in (
            "spki-pem",
            "spki-pem-no-newline",
            "pkcs1-pem",
            "jwk-n-bytes",
            "jwk-n-text",
            "jwk-json",
        )
    ]
    + [("HS384", "spki-pem"), ("HS512", "spki-pem"), ("HS512", "jwk-n-bytes")],
)
def test_hmac_signed_with_the_rsa_public_key(
    dev_idp: DevIdP, primed: tw.Verifier, alg: str, form: str
) -> None:
    jwk = dev_idp.signing_key().public_jwk()
    secret = _hmac_secrets(jwk)[form]
    header = {"alg": alg, "typ": "JWT", "kid": jwk["kid"]}
    expect_invalid(
        primed, hmac_token(alg, secret, header, dev_idp.make_claims()), "alg_not_allowed"
    )


@pytest.mark.parametrize(
    "alg", ["foo", "rs256", "RS256 ", "ES512", "RSA-OAEP", "dir", "HS256", "Ed25519", "ES256K"]
)
def test_alg_names_outside_the_allowed_set(dev_idp: DevIdP, primed: tw.Verifier, alg: str) -> None:
    expect_invalid(primed, dev_idp.mint(headers={"alg": alg}), "alg_not_allowed")


@pytest.mark.parametrize("alg", [None, "", 256, ["RS256"]], ids=["missing", "empty", "int", "list"])
def test_alg_missing_or_not_a_name(dev_idp: DevIdP, primed: tw.Verifier, alg: Any) -> None:
    token = dev_idp.mint(headers={"alg": alg})
    expect_invalid(primed, token, {"malformed", "alg_not_allowed"})


# ---- alg vs key --------------------------------------------------------------------------------


@pytest.mark.parametrize("claimed", ["ES256", "ES384", "EdDSA"])
def test_header_alg_of_another_key_type_with_the_rsa_kid(
    dev_idp: DevIdP, primed: tw.Verifier, claimed: str
) -> None:
    token = dev_idp.mint(headers={"alg": claimed})  # RSA signature, RSA kid, EC/OKP alg
    assert header_of(token)["kid"] == dev_idp.current_kid
    expect_invalid(primed, token, "alg_not_allowed")


@pytest.mark.parametrize(("real", "claimed"), [("ES256", "RS256"), ("EdDSA", "ES256")])
def test_header_alg_of_another_key_type_with_a_non_rsa_kid(
    dev_idp: DevIdP, verifier: tw.Verifier, real: str, claimed: str
) -> None:
    expect_invalid(verifier, dev_idp.mint(alg=real, headers={"alg": claimed}), "alg_not_allowed")


@pytest.mark.parametrize("claimed", ["RS384", "RS512", "PS256"])
def test_header_alg_differs_from_the_jwk_alg(
    dev_idp: DevIdP, primed: tw.Verifier, claimed: str
) -> None:
    # Same key type (RSA) but the published JWK says "alg": "RS256".
    expect_invalid(primed, dev_idp.mint(headers={"alg": claimed}), "alg_not_allowed")


def test_a_jwk_without_alg_takes_the_family_of_its_kty(
    dev_idp: DevIdP, verifier: tw.Verifier
) -> None:
    outsider = SigningKey.generate("PS256", "no-alg-rsa")
    jwk = outsider.public_jwk()
    del jwk["alg"]
    dev_idp.extra_jwks.append(jwk)
    claims = json.dumps(dev_idp.make_claims(sub="ps"))
    assert verifier.verify(outsider.sign(claims))["sub"] == "ps"
    # The header names another RSA alg: allowed for the key, but the signature is PSS.
    expect_invalid(verifier, outsider.sign(claims, '{"alg":"RS256"}'), "bad_signature")
    expect_invalid(verifier, outsider.sign(claims, '{"alg":"ES256"}'), "alg_not_allowed")


# ---- header members that point at keys, and crit -----------------------------------------------


@pytest.mark.parametrize("member", ["jku", "x5u", "jwk"])
def test_header_key_references_are_never_followed(
    dev_idp: DevIdP, primed: tw.Verifier, evil_idp: DevIdP, member: str
) -> None:
    attacker = SigningKey.generate("RS256", dev_idp.current_kid)  # same kid as the realm's
    evil_idp.extra_jwks.append(attacker.public_jwk())
    value = attacker.public_jwk() if member == "jwk" else evil_idp.jwks_uri
    header = json.dumps({member: value})
    token = attacker.sign(json.dumps(dev_idp.make_claims(sub="admin")), header)
    expect_invalid(primed, token, "bad_signature")
    assert evil_idp.hits["jwks"] == 0, f"the verifier followed {member}"


@pytest.mark.parametrize(
    "headers",
    [
        {"crit": ["x-tenant"], "x-tenant": "t1"},
        {"crit": ["b64"], "b64": False},
        {"crit": ["exp"], "exp": 4102444800},
        {"crit": "x-tenant", "x-tenant": "t1"},
        {"crit": []},
        {"crit": ["x-missing"]},
    ],
    ids=["extension", "b64", "exp", "not-a-list", "empty-list", "absent-member"],
)
def test_unknown_crit_is_malformed(
    dev_idp: DevIdP, primed: tw.Verifier, headers: dict[str, Any]
) -> None:
    expect_invalid(primed, dev_idp.mint(headers=headers), "malformed")


def test_duplicate_header_members(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    token = dev_idp.mint()
    _, payload, sig = token.split(".")
    raw = f'{{"alg":"RS256","kid":"{dev_idp.current_kid}","alg":"none"}}'
    expect_invalid(
        primed, f"{b64url(raw.encode())}.{payload}.{sig}", {"malformed", "alg_not_allowed"}
    )


# ---- encodings and shapes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h: h[:5] + "!" + h[6:],
        lambda h: h + "=",
        lambda h: h + "==",
        lambda h: h[:-1],
        lambda h: h.replace("e", "+", 1),
        lambda h: " " + h,
    ],
    ids=["bang", "pad1", "pad2", "truncated", "std-alphabet", "space"],
)
def test_bad_base64_in_the_header(dev_idp: DevIdP, primed: tw.Verifier, mangle: Any) -> None:
    header, payload, sig = dev_idp.mint().split(".")
    expect_invalid(primed, f"{mangle(header)}.{payload}.{sig}", "malformed")


@pytest.mark.parametrize("part", [1, 2], ids=["payload", "signature"])
def test_bad_base64_in_the_payload_or_signature(
    dev_idp: DevIdP, primed: tw.Verifier, part: int
) -> None:
    parts = dev_idp.mint().split(".")
    parts[part] = parts[part][:10] + "*!" + parts[part][12:]
    # The signature input is the raw text, so either check may come first.
    expect_invalid(primed, ".".join(parts), {"malformed", "bad_signature"})


@pytest.mark.parametrize(
    "raw_header",
    [
        b"not json",
        b'["RS256"]',
        b'"RS256"',
        b"42",
        b"null",
        b'{"alg":"RS256"} x',
        b"\xff\xfe{}",
        b"",
    ],
    ids=["text", "array", "string", "number", "null", "trailing", "not-utf8", "empty"],
)
def test_header_that_is_not_a_json_object(
    dev_idp: DevIdP, primed: tw.Verifier, raw_header: bytes
) -> None:
    _, payload, sig = dev_idp.mint().split(".")
    expect_invalid(primed, f"{b64url(raw_header)}.{payload}.{sig}", "malformed")


@pytest.mark.parametrize(
    "payload",
    ["not json", "[1, 2]", '"u1"', "4102444800", "null", '{"sub":"u1"} trailing', ""],
    ids=["text", "array", "string", "number", "null", "trailing", "empty"],
)
def test_genuinely_signed_payload_that_is_not_a_json_object(
    dev_idp: DevIdP, primed: tw.Verifier, payload: str
) -> None:
    expect_invalid(primed, _sign_raw(dev_idp, payload), "malformed")


@pytest.mark.parametrize(
    "shape",
    [
        lambda t: "",
        lambda t: t.replace(".", ""),
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t + ".",
        lambda t: t + "." + t.split(".")[2],
        lambda t: "..",
        lambda t: "...",
        lambda t: ".".join(t.split(".")[1:]),
    ],
    ids=[
        "empty",
        "no-dots",
        "two-parts",
        "trailing-dot",
        "four-parts",
        "dots",
        "three-dots",
        "no-header",
    ],
)
def test_wrong_number_of_segments(dev_idp: DevIdP, primed: tw.Verifier, shape: Any) -> None:
    expect_invalid(primed, shape(dev_idp.mint()), "malformed")


def test_jwe_shaped_five_segments(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    header = b64url_json({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": dev_idp.current_kid})
    parts = [
        header,
        b64url(b"k" * 256),
        b64url(b"iv" * 6),
        b64url(b"ciphertext"),
        b64url(b"t" * 16),
    ]
    expect_invalid(primed, ".".join(parts), "malformed")


# ---- signatures --------------------------------------------------------------------------------


def test_empty_signature(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    header, payload, _ = dev_idp.mint().split(".")
    expect_invalid(primed, f"{header}.{payload}.", {"bad_signature", "malformed"})


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:-4],
        lambda s: s[: len(s) // 2] + ("A" if s[len(s) // 2] != "A" else "B") + s[len(s) // 2 + 1 :],
        lambda s: s + "AAAA",
        lambda s: b64url(b"\x00" * 256),
    ],
    ids=["truncated", "bit-flip", "extended", "zeros"],
)
def test_damaged_signature(dev_idp: DevIdP, primed: tw.Verifier, mangle: Any) -> None:
    header, payload, sig = dev_idp.mint().split(".")
    expect_invalid(primed, f"{header}.{payload}.{mangle(sig)}", "bad_signature")


def test_signature_by_another_key_with_the_same_kid(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    attacker = SigningKey.generate("RS256", dev_idp.current_kid)
    token = attacker.sign(json.dumps(dev_idp.make_claims(sub="admin")))
    assert header_of(token)["kid"] == dev_idp.current_kid
    expect_invalid(primed, token, "bad_signature")


def test_signature_by_a_rotated_out_key_under_the_current_kid(
    dev_idp: DevIdP, primed: tw.Verifier
) -> None:
    old = dev_idp.signing_key()
    new_kid = dev_idp.rotate_keys(keep_old=False)
    token = old.sign(json.dumps(dev_idp.make_claims()), json.dumps({"kid": new_kid}))
    expect_invalid(primed, token, "bad_signature")


def test_tampered_payload(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    token = dev_idp.mint()
    expect_invalid(primed, with_claims(token, sub="admin"), "bad_signature")
    expect_invalid(primed, with_claims(token, realm_access={"roles": ["admin"]}), "bad_signature")


def test_signature_transplanted_from_another_token(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    victim = dev_idp.mint(sub="admin", expires_in=-3600)
    donor = dev_idp.mint(sub="guest")
    header, payload, _ = victim.split(".")
    expect_invalid(primed, f"{header}.{payload}.{donor.split('.')[2]}", "bad_signature")


# ---- size --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "junk",
    ["x" * 20_000, "a.b." + "c" * 20_000, "é" * 9_000, b"x" * 20_000],
    ids=["no-dots", "three-parts", "multibyte", "bytes"],
)
def test_oversized_input_is_too_large_before_any_decoding(
    primed: tw.Verifier, junk: str | bytes
) -> None:
    expect_invalid(primed, junk, "too_large")


def test_huge_header(dev_idp: DevIdP, primed: tw.Verifier, make_verifier: MakeVerifier) -> None:
    token = dev_idp.mint(headers={"x-pad": "p" * 20_000})
    expect_invalid(primed, token, "too_large")
    roomy = make_verifier(max_token_bytes=200_000)
    assert roomy.verify(token)["sub"] == "u1", "a big header is fine under a bigger limit"


# ---- kid tricks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kid",
    ["../../etc/passwd", "..\\..\\windows\\win.ini", "%2e%2e%2f", "' OR '1'='1"],
    ids=["dotdot", "backslash", "encoded", "sql"],
)
def test_kid_path_and_injection_tricks(dev_idp: DevIdP, primed: tw.Verifier, kid: str) -> None:
    expect_invalid(primed, dev_idp.mint(kid=kid), "unknown_kid")


def test_kid_near_misses_of_the_real_kid(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    # A cooldown past the 5 s wait bound: each unknown kid after the first is refused at once
    # instead of waiting for the next refetch.
    primed = make_verifier(jwks_cooldown=3600)
    assert primed.verify(dev_idp.mint())["sub"] == "u1"
    real = dev_idp.current_kid
    for kid in (real + " ", real.swapcase(), real[:-1], real + real):
        expect_invalid(primed, dev_idp.mint(kid=kid), "unknown_kid")


@pytest.mark.parametrize(
    "kid",
    ["kid\x00with-nul", "\x00", "k" * 5_000, "", 123, ["a"], {"k": 1}],
    ids=["nul-inside", "nul", "very-long", "empty", "int", "list", "object"],
)
def test_kid_odd_values(dev_idp: DevIdP, primed: tw.Verifier, kid: Any) -> None:
    token = dev_idp.mint(headers={"kid": kid})
    expect_invalid(primed, token, {"unknown_kid", "malformed"})


# ---- what verify() accepts as input ------------------------------------------------------------


@pytest.mark.parametrize("value", [12345, None, 1.5, ["a.b.c"], {"token": "a.b.c"}])
def test_non_string_input_is_refused(primed: tw.Verifier, value: Any) -> None:
    with pytest.raises((TypeError, tw.InvalidToken)) as info:
        primed.verify(value)
    if isinstance(info.value, tw.InvalidToken):
        assert info.value.code == "malformed"


def test_bytes_input_verifies(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    token = dev_idp.mint(sub="bytes-user")
    assert primed.verify(token.encode("ascii"))["sub"] == "bytes-user"


@pytest.mark.parametrize(
    "token",
    [b"\xff\xfe.\x80\x81.\xc0", "Bearer {t}", "{t}\n{t}", "{t}.{t}"],
    ids=["not-utf8", "bearer-prefix", "two-tokens", "concatenated"],
)
def test_junk_around_or_inside_the_token(
    dev_idp: DevIdP, primed: tw.Verifier, token: str | bytes
) -> None:
    if isinstance(token, str):
        token = token.format(t=dev_idp.mint())
    expect_invalid(primed, token, "malformed")


def test_nul_after_the_signature(dev_idp: DevIdP, primed: tw.Verifier) -> None:
    expect_invalid(primed, dev_idp.mint() + "\x00", {"malformed", "bad_signature"})
