"""`tokenward verify [TOKEN|-]`: verify a token as a backend would (KEYCLOAK_* settings)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ._common import REJECTED, add_json, print_json, read_token_argument

HELP = "verify a token as a backend configured by KEYCLOAK_* would"


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "verify",
        help=HELP,
        description=HELP + " (KEYCLOAK_URL, KEYCLOAK_REALM, KEYCLOAK_AUDIENCE, "
        "KEYCLOAK_ALLOWED_AZP, KEYCLOAK_VERIFY_ISS, KEYCLOAK_JWKS_URL); the options win.",
    )
    p.add_argument(
        "token", nargs="?", help="the JWT or a pasted 'Bearer ...' value; - or none: stdin"
    )
    p.add_argument("--issuer", help="the trusted issuer (default: from KEYCLOAK_URL)")
    p.add_argument("--audience", action="append", help="an accepted audience (repeatable)")
    p.add_argument("--azp", action="append", help="an allowed azp (repeatable)")
    p.add_argument("--leeway", type=int, help="clock leeway in seconds (default 60)")
    p.add_argument("--ca-bundle", help="PEM file of the CA(s) to trust for the IdP")
    p.add_argument("--jwks-uri", help="the key set's URL (default: from discovery)")
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import InvalidToken, Verifier

    token = read_token_argument(args.token)
    settings: dict[str, Any] = {}
    for name, value in (
        ("issuer", args.issuer),
        ("audience", args.audience),
        ("allowed_azp", args.azp),
        ("leeway", args.leeway),
        ("ca_bundle", args.ca_bundle),
        ("jwks_uri", args.jwks_uri),
    ):
        if value is not None:
            settings[name] = value
    if os.environ.get("KEYCLOAK_URL") or "issuer" not in settings:
        verifier = Verifier.from_env(**settings)
    else:  # no Keycloak environment: the options say it all
        verifier = Verifier(**settings)
    try:
        claims = verifier.verify(token)
    except InvalidToken as e:
        if args.json:
            print_json({"valid": False, "code": e.code, "detail": str(e)})
        else:
            print(f"rejected: {e.code}: {e}")
        return REJECTED
    if args.json:
        print_json({"valid": True, "issuer": verifier.issuer, "claims": claims})
    else:
        print(f"valid: signed by {verifier.issuer}")
        print(json.dumps(claims, indent=2, sort_keys=True))
    return 0
