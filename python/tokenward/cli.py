"""The command line: `python -m tokenward demo | verify`."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _verify(args: argparse.Namespace) -> int:
    from . import TokenwardError, Verifier

    verifier = Verifier(args.issuer, jwks_uri=args.jwks_uri, audience=args.audience)
    token = args.token if args.token != "-" else sys.stdin.read().strip()
    try:
        claims = verifier.verify(token)
    except TokenwardError as e:
        code = getattr(e, "code", type(e).__name__)
        print(f"rejected: {code}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(claims, indent=2, sort_keys=True))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    return run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokenward")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the verification demo against an embedded DevIdP")
    verify = sub.add_parser("verify", help="verify one token against an issuer's JWKS")
    verify.add_argument("issuer")
    verify.add_argument("token", help="the JWT, or - to read it from stdin")
    verify.add_argument("--jwks-uri")
    verify.add_argument("--audience")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handlers = {"demo": _demo, "verify": _verify}
    return handlers[args.command](args)
