"""JOSE helpers for building hostile tokens by hand, and assertions on rejections.

Only the standard library: the tests must not grow a second JWT implementation, just enough
base64url/JSON/DER to assemble the bytes an attacker would send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import select
import signal
from collections.abc import Callable, Collection
from typing import Any

import pytest
import tokenward as tw

#: The `make_verifier` fixture: builds a Verifier for the test's DevIdP.
MakeVerifier = Callable[..., tw.Verifier]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(document: Any) -> str:
    return b64url(json.dumps(document, separators=(",", ":")).encode())


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def header_of(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[0]))


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[1]))


def encode(header: Any, claims: Any, signature: bytes | str = b"") -> str:
    """A compact JWS from a header and claims (JSON-encoded) and a signature (raw bytes, or an
    already encoded segment when a str)."""
    sig = signature if isinstance(signature, str) else b64url(signature)
    return f"{b64url_json(header)}.{b64url_json(claims)}.{sig}"


def _changed(document: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(document)
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def with_header(token: str, **changes: Any) -> str:
    """The token with its header re-encoded with `changes` (None removes a member); payload and
    signature are kept as they are (so the signature no longer matches)."""
    _, payload, sig = token.split(".")
    return f"{b64url_json(_changed(header_of(token), changes))}.{payload}.{sig}"


def with_claims(token: str, **changes: Any) -> str:
    """The token with its payload re-encoded with `changes`; header and signature kept."""
    header, _, sig = token.split(".")
    return f"{header}.{b64url_json(_changed(claims_of(token), changes))}.{sig}"


def hmac_token(alg: str, secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """An HS256/384/512 token made with `secret`, the classic key-confusion forgery."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    mac = hmac.new(secret, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{b64url(mac)}"


# ---- RSA public keys as PEM, from a JWK (tiny DER encoder) -----------------------------------


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _der_uint(value: bytes) -> bytes:
    value = value.lstrip(b"\x00") or b"\x00"
    if value[0] & 0x80:
        value = b"\x00" + value
    return _der(0x02, value)


_RSA_ENCRYPTION_OID = bytes.fromhex("06092a864886f70d010101")


def _pem(label: str, der: bytes) -> str:
    text = base64.b64encode(der).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def rsa_public_pems(jwk: dict[str, Any]) -> dict[str, str]:
    """The PEM forms of an RSA public JWK: SubjectPublicKeyInfo ("PUBLIC KEY") and PKCS#1."""
    pkcs1 = _der(0x30, _der_uint(b64url_decode(jwk["n"])) + _der_uint(b64url_decode(jwk["e"])))
    algorithm = _der(0x30, _RSA_ENCRYPTION_OID + b"\x05\x00")
    spki = _der(0x30, algorithm + _der(0x03, b"\x00" + pkcs1))
    return {"spki": _pem("PUBLIC KEY", spki), "pkcs1": _pem("RSA PUBLIC KEY", pkcs1)}


# ---- assertions --------------------------------------------------------------------------------


def assert_no_token_leak(exc: BaseException, token: str | bytes) -> None:
    """Neither the token nor any sizeable part of it shows in the exception's text."""
    text = f"{exc!s} {exc!r} {exc.args!r}"
    if isinstance(token, bytes):
        token = token.decode("utf-8", "replace")
    if len(token) >= 16:
        assert token not in text
    for segment in token.split("."):
        if len(segment) >= 16:
            assert segment not in text, "a token segment leaked into the exception text"


def expect_invalid(
    verifier: tw.Verifier, token: str | bytes, code: str | Collection[str]
) -> tw.InvalidToken:
    """Assert `verifier.verify(token)` raises InvalidToken with `code` (or one of `codes`),
    without the token in its text."""
    codes = {code} if isinstance(code, str) else set(code)
    with pytest.raises(tw.InvalidToken) as info:
        verifier.verify(token)
    assert info.value.code in codes, f"expected {sorted(codes)}, got {info.value.code!r}"
    assert_no_token_leak(info.value, token)
    return info.value


#: How long a forked child may take before a fork test fails.
CHILD_TIMEOUT = 60.0


def read_child_report(fd: int, pid: int) -> dict[str, Any]:
    """The JSON a forked child wrote to the pipe `fd`; fails the test if the child hung, exited
    non-zero or wrote nothing."""
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], CHILD_TIMEOUT)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                pytest.fail("the forked child hung")
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert chunks, "the child reported nothing"
    return json.loads(b"".join(chunks))
