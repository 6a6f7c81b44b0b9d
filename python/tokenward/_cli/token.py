"""`tokenward token`: a client-credentials token, or a password-grant one for local checks."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
import urllib.parse
from typing import Any

from ._common import (
    REJECTED,
    UNREACHABLE,
    USAGE,
    Fail,
    add_json,
    http_request,
    issuer_or_env,
    print_json,
    read_secret,
)

HELP = "get an access token (client credentials, or --user for a password grant)"

_SECRET_ENV = ("AGENT_CLIENT_SECRET", "KEYCLOAK_CLIENT_SECRET")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "token",
        help=HELP,
        description=HELP + ". The client secret comes from --secret-file, else "
        "AGENT_CLIENT_SECRET or KEYCLOAK_CLIENT_SECRET (or AGENT_PRIVATE_KEY_FILE: "
        "private_key_jwt), else a prompt; never from an argument.",
    )
    add_token_options(p)
    p.add_argument(
        "--user", help="password grant for this user; the password is prompted, never echoed"
    )
    p.add_argument("--password-file", help="password grant: read the password from this file")
    add_json(p)
    p.set_defaults(run=run)


def add_token_options(p: argparse.ArgumentParser) -> None:
    """The options that say which client asks which IdP (shared with `tokenward call`)."""
    p.add_argument("--issuer", help="the issuer URL (default: from KEYCLOAK_URL)")
    p.add_argument("--token-url", help="the token endpoint (default: from discovery)")
    p.add_argument(
        "--client-id", help="the client (default: AGENT_CLIENT_ID or KEYCLOAK_CLIENT_ID)"
    )
    p.add_argument("--secret-file", help="read the client secret from this file")
    p.add_argument("--scope", action="append", help="a scope to ask for (repeatable)")
    p.add_argument("--audience", help="the audience to ask for")
    p.add_argument("--ca-bundle", help="PEM file of the CA(s) to trust for the IdP")


def client_credentials_token(args: argparse.Namespace) -> str:
    """A token from a `TokenClient` configured like the agents' (`TokenClient.from_env`)."""
    from .. import TokenClient

    settings: dict[str, Any] = {}
    for name, value in (
        ("token_url", args.token_url),
        ("client_id", args.client_id),
        ("scope", args.scope),
        ("audience", args.audience),
        ("ca_bundle", args.ca_bundle),
    ):
        if value is not None:
            settings[name] = value
    if args.issuer or not args.token_url:
        settings["issuer"] = issuer_or_env(args.issuer)
    has_key = bool(os.environ.get("AGENT_PRIVATE_KEY_FILE"))
    if args.secret_file is not None or not has_key:
        secret = read_secret(
            secret_file=args.secret_file,
            env_names=_SECRET_ENV,
            prompt="client secret: ",
            required=True,
        )
        settings["client_secret"] = secret
    if os.environ.get("KEYCLOAK_URL"):
        client = TokenClient.from_env(**settings)
    else:
        # No Keycloak environment: the options say it all (from_env would want KEYCLOAK_URL).
        client_id = settings.pop("client_id", None) or os.environ.get("AGENT_CLIENT_ID")
        client_id = client_id or os.environ.get("KEYCLOAK_CLIENT_ID")
        if not client_id:
            raise Fail("no client: give --client-id or set AGENT_CLIENT_ID", USAGE)
        if "client_secret" not in settings and has_key:
            settings["private_key"] = _read_key(os.environ["AGENT_PRIVATE_KEY_FILE"])
        client = TokenClient(client_id=client_id, **settings)
    return client.get_token()


def _read_key(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise Fail(f"cannot read AGENT_PRIVATE_KEY_FILE {path}: {e.strerror}", USAGE) from None


def _password_grant(args: argparse.Namespace) -> dict[str, Any]:
    issuer = issuer_or_env(args.issuer)
    client_id = (
        args.client_id or os.environ.get("AGENT_CLIENT_ID") or os.environ.get("KEYCLOAK_CLIENT_ID")
    )
    if not client_id:
        raise Fail("no client: give --client-id or set KEYCLOAK_CLIENT_ID", USAGE)
    if args.password_file is not None:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                password = f.read().rstrip("\r\n")
        except OSError as e:
            raise Fail(f"cannot read --password-file: {e.strerror}", USAGE) from None
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.user}: ")
    else:
        raise Fail("no password: run in a terminal (prompt) or use --password-file", USAGE)
    form = {"grant_type": "password", "client_id": client_id, "username": args.user}
    form["password"] = password
    form["scope"] = " ".join(args.scope or ["openid"])
    secret = (
        read_secret(secret_file=args.secret_file, env_names=_SECRET_ENV, prompt="", required=False)
        if args.secret_file is not None or any(os.environ.get(n) for n in _SECRET_ENV)
        else None
    )
    if secret:
        form["client_secret"] = secret
    if args.audience:
        form["audience"] = args.audience
    token_url = args.token_url or _token_endpoint(issuer, args.ca_bundle)
    answer = http_request(
        token_url,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        data=urllib.parse.urlencode(form).encode(),
        ca_bundle=args.ca_bundle,
    )
    try:
        document = json.loads(answer.body)
    except ValueError:
        document = None
    if answer.status != 200 or not isinstance(document, dict) or "access_token" not in document:
        error = document.get("error") if isinstance(document, dict) else None
        description = document.get("error_description") if isinstance(document, dict) else None
        why = ": ".join(str(x) for x in (error, description) if x) or "no token in the answer"
        code = UNREACHABLE if answer.status >= 500 else REJECTED
        raise Fail(f"password grant refused (HTTP {answer.status}): {why}", code)
    return document


def _token_endpoint(issuer: str, ca_bundle: str | None) -> str:
    from .._native import issuer_paths

    answer = http_request(issuer + issuer_paths()["discovery"], ca_bundle=ca_bundle)
    try:
        endpoint = json.loads(answer.body).get("token_endpoint") if answer.status == 200 else None
    except (ValueError, AttributeError):
        endpoint = None
    return endpoint if isinstance(endpoint, str) else issuer + issuer_paths()["token"]


def _unverified_exp(token: str) -> float | None:
    from .inspect import decode_unverified

    try:
        exp = decode_unverified(token)[1].get("exp")
    except Fail:
        return None
    return exp if isinstance(exp, (int, float)) else None


def run(args: argparse.Namespace) -> int:
    if args.password_file is not None and args.user is None:
        raise Fail("--password-file needs --user (the password grant)", USAGE)
    if args.user is not None:
        document = _password_grant(args)
        if args.json:
            print_json(document)
        else:
            print(document["access_token"])
        return 0
    token = client_credentials_token(args)
    if args.json:
        exp = _unverified_exp(token)
        print_json(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": None if exp is None else max(0, int(exp - time.time())),
            }
        )
    else:
        print(token)
    return 0
