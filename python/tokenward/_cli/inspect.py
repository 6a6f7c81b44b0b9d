"""`tokenward inspect [TOKEN|-]`: a token's header and claims, decoded WITHOUT verifying."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import time
from datetime import datetime
from typing import Any

from ._common import REJECTED, Fail, add_json, print_json, read_token_argument

HELP = "decode a token without verifying it: header, claims, times, roles, groups"

_TIMES = ("iat", "nbf", "exp", "auth_time")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("inspect", help=HELP, description=HELP + ".")
    p.add_argument(
        "token", nargs="?", help="the JWT or a pasted 'Bearer ...' value; - or none: stdin"
    )
    add_json(p)
    p.set_defaults(run=run)


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, not verified; Fail (exit 1) when it is none."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Fail(f"not a JWT: {len(parts)} dot-separated parts, not 3", REJECTED)
    decoded = []
    for name, part in zip(("header", "claims"), parts[:2]):
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
            value = json.loads(raw)
        except (binascii.Error, ValueError):
            raise Fail(f"not a JWT: the {name} is not base64url JSON", REJECTED) from None
        if not isinstance(value, dict):
            raise Fail(f"not a JWT: the {name} is not a JSON object", REJECTED)
        decoded.append(value)
    return decoded[0], decoded[1]


def relative(seconds: float) -> str:
    """`in 4m 59s` or `2h 3m ago`."""
    span = abs(int(seconds))
    days, rest = divmod(span, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{u}" for n, u in units if n][:2] or ["0s"]
    text = " ".join(shown)
    return f"in {text}" if seconds > 0 else f"{text} ago"


def summary(token: str) -> dict[str, Any]:
    header, claims = decode_unverified(token)
    now = time.time()
    times = {}
    for name in _TIMES:
        value = claims.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            local = datetime.fromtimestamp(value).astimezone()
            times[name] = {
                "epoch": value,
                "local": local.isoformat(timespec="seconds"),
                "relative": relative(value - now),
            }
    realm = claims.get("realm_access")
    realm_roles = realm.get("roles", []) if isinstance(realm, dict) else []
    client_roles = {}
    resources = claims.get("resource_access")
    if isinstance(resources, dict):
        for client, access in resources.items():
            if isinstance(access, dict) and isinstance(access.get("roles"), list):
                client_roles[client] = access["roles"]
    groups = claims.get("groups") if isinstance(claims.get("groups"), list) else []
    exp = claims.get("exp")
    return {
        "verified": False,
        "header": header,
        "claims": claims,
        "times": times,
        "expired": isinstance(exp, (int, float)) and exp <= now,
        "realm_roles": realm_roles,
        "client_roles": client_roles,
        "groups": groups,
    }


def run(args: argparse.Namespace) -> int:
    info = summary(read_token_argument(args.token))
    if args.json:
        print_json(info)
        return 0
    print("UNVERIFIED: decoded only; the signature and claims were NOT checked")
    print("header:")
    for name, value in info["header"].items():
        print(f"  {name}: {json.dumps(value)}")
    print("claims:")
    for name, value in info["claims"].items():
        if name in ("realm_access", "resource_access", "groups"):
            continue
        print(f"  {name}: {json.dumps(value)}")
    for name, t in info["times"].items():
        print(f"{name + ':':10} {t['local']} ({t['relative']})")
    if info["expired"]:
        print("expired:   yes")
    print("realm roles:  " + (", ".join(map(str, info["realm_roles"])) or "(none)"))
    if info["client_roles"]:
        print("client roles:")
        for client, roles in info["client_roles"].items():
            print(f"  {client}: {', '.join(map(str, roles)) or '(none)'}")
    else:
        print("client roles: (none)")
    print("groups:       " + (", ".join(map(str, info["groups"])) or "(none)"))
    return 0
