"""`tokenward jwks [ISSUER]`: the keys an issuer publishes, and which the verifier would skip."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from typing import Any

from ._common import (
    REJECTED,
    UNREACHABLE,
    Fail,
    add_json,
    http_request,
    issuer_or_env,
    print_json,
)

HELP = "list an issuer's published keys and which the verifier would skip, and why"

_CURVE_BITS = {"P-256": 256, "P-384": 384, "P-521": 521, "Ed25519": 256, "Ed448": 456}


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("jwks", help=HELP, description=HELP + ".")
    p.add_argument("issuer", nargs="?", help="the issuer URL (default: from KEYCLOAK_URL)")
    p.add_argument("--jwks-uri", help="the key set's URL (default: from discovery)")
    p.add_argument("--ca-bundle", help="PEM file of the CA(s) to trust for the IdP")
    add_json(p)
    p.set_defaults(run=run)


def _get_json(url: str, ca_bundle: str | None, what: str) -> tuple[Any, bytes]:
    answer = http_request(url, headers={"Accept": "application/json"}, ca_bundle=ca_bundle)
    if answer.status != 200:
        raise Fail(f"{what} {url} answered HTTP {answer.status}", UNREACHABLE)
    try:
        return json.loads(answer.body), answer.body
    except ValueError:
        raise Fail(f"{what} {url} is not JSON", UNREACHABLE) from None


def jwks_uri_of(issuer: str, ca_bundle: str | None) -> str:
    """The issuer's `jwks_uri` from its discovery document."""
    from .._native import issuer_paths

    doc, _ = _get_json(issuer + issuer_paths()["discovery"], ca_bundle, "discovery document")
    uri = doc.get("jwks_uri") if isinstance(doc, dict) else None
    if not isinstance(uri, str):
        raise Fail(f"the discovery document of {issuer} has no jwks_uri", UNREACHABLE)
    return uri


def key_size(jwk: dict[str, Any]) -> int | None:
    """The key's size in bits: the RSA modulus's, or the curve's."""
    if jwk.get("kty") == "RSA" and isinstance(jwk.get("n"), str):
        n = jwk["n"]
        try:
            raw = base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))
        except (binascii.Error, ValueError):
            return None
        return int.from_bytes(raw, "big").bit_length()
    crv = jwk.get("crv")
    return _CURVE_BITS.get(crv) if isinstance(crv, str) else None


def run(args: argparse.Namespace) -> int:
    from .._native import _review_jwks

    issuer = issuer_or_env(args.issuer)
    uri = args.jwks_uri or jwks_uri_of(issuer, args.ca_bundle)
    doc, body = _get_json(uri, args.ca_bundle, "key set")
    try:
        verdicts = _review_jwks(body)
    except ValueError as e:
        raise Fail(f"the key set at {uri} is unusable: {e}", REJECTED) from None
    entries = doc["keys"]
    keys: list[dict[str, Any]] = []
    for index, kid, skipped in verdicts:
        jwk = entries[index] if isinstance(entries[index], dict) else {}
        keys.append(
            {
                "kid": kid,
                "kty": jwk.get("kty"),
                "alg": jwk.get("alg"),
                "use": jwk.get("use"),
                "size": key_size(jwk),
                "used": skipped is None,
                "skipped": skipped,
            }
        )
    usable = sum(1 for k in keys if k["used"])
    if args.json:
        print_json({"issuer": issuer, "jwks_uri": uri, "usable": usable, "keys": keys})
    else:
        print(f"{uri}: {len(keys)} keys, {usable} usable")
        rows = [["KID", "KTY", "ALG", "USE", "SIZE", "VERIFIER"]]
        for k in keys:
            verdict = "used" if k["used"] else f"skipped: {k['skipped']}"
            cells = (k["kid"], k["kty"], k["alg"], k["use"], k["size"])
            rows.append(["-" if v is None else str(v) for v in cells] + [verdict])
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
    return 0 if usable else REJECTED
