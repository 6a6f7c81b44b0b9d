"""`tokenward call URL`: call a service with a bearer token, showing the status and the
`WWW-Authenticate` answer (the operator guide's `curl -H "Authorization: Bearer $TOKEN"`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import (
    OK,
    REJECTED,
    USAGE,
    Fail,
    add_json,
    http_request,
    print_json,
    read_token_argument,
)
from .token import add_token_options, client_credentials_token

HELP = "call a service with a bearer token; show the status and WWW-Authenticate"

#: How much of the answer's body is shown in text mode.
_BODY_SHOWN = 2000


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "call",
        help=HELP,
        description=HELP + ". The token is a client-credentials one (as `tokenward token` "
        "gets it) unless --token-file or --token-stdin gives one.",
    )
    p.add_argument("url")
    p.add_argument("-X", "--method", default="GET", help="HTTP method (default GET)")
    p.add_argument("-H", "--header", action="append", default=[], help="'Name: value' (repeatable)")
    p.add_argument("--token-file", help="send the token in this file")
    p.add_argument("--token-stdin", action="store_true", help="send the token read from stdin")
    p.add_argument("--no-token", action="store_true", help="send no Authorization header")
    add_token_options(p)
    add_json(p)
    p.set_defaults(run=run)


def _token(args: argparse.Namespace) -> str | None:
    if args.no_token:
        return None
    if args.token_stdin:
        return read_token_argument("-")
    if args.token_file is not None:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                return read_token_argument(f.read())
        except OSError as e:
            raise Fail(f"cannot read --token-file: {e.strerror}", USAGE) from None
    return client_credentials_token(args)


def run(args: argparse.Namespace) -> int:
    headers = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise Fail(f"-H wants 'Name: value', not {header!r}", USAGE)
        headers[name.strip()] = value.strip()
    token = _token(args)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    answer = http_request(
        args.url, method=args.method.upper(), headers=headers, ca_bundle=args.ca_bundle
    )
    challenge = next(
        (v for k, v in answer.headers.items() if k.lower() == "www-authenticate"), None
    )
    body = answer.body.decode("utf-8", errors="replace")
    if args.json:
        print_json(
            {
                "status": answer.status,
                "reason": answer.reason,
                "www_authenticate": challenge,
                "body": body,
            }
        )
    else:
        print(f"HTTP {answer.status} {answer.reason}")
        if challenge is not None:
            print(f"WWW-Authenticate: {challenge}")
        if body:
            shown = body if len(body) <= _BODY_SHOWN else body[:_BODY_SHOWN] + " ..."
            sys.stdout.write(shown if shown.endswith("\n") else shown + "\n")
    return OK if answer.status < 400 else REJECTED
