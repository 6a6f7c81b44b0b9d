"""The operator's command line, `tokenward` (and `python -m tokenward`): one module per
subcommand; this one builds the parser and turns every failure into one line and an exit code
(README.md, "Command line")."""

from __future__ import annotations

import argparse
import logging
import sys

from . import agent, call, demo, inspect, jwks, token, verify
from ._common import OK, REJECTED, UNREACHABLE, USAGE, Fail

__all__ = ["main"]

_EPILOG = """exit codes:
  0  ok
  1  rejected: the token (or the credentials, or the call) was refused
  2  usage or configuration error
  3  the IdP (or the service) could not be reached

Secrets are never taken as arguments: use a prompt, a file or the environment."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenward",
        description="Get, inspect and verify OIDC tokens; look at an issuer's keys; call a "
        "service with a token.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG on stderr")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (token, inspect, verify, jwks, call, demo, agent):
        module.add_parser(sub)
    return parser


def _exit_code(error: BaseException) -> tuple[int, str]:
    """The exit code and the one line for a failure."""
    from ..errors import ConfigError, InvalidToken, KeySetUnavailable, TokenRequestError

    if isinstance(error, Fail):
        return error.code, str(error)
    if isinstance(error, ConfigError):
        return USAGE, f"configuration: {error}"
    if isinstance(error, InvalidToken):
        return REJECTED, f"rejected: {error.code}: {error}"
    if isinstance(error, KeySetUnavailable):
        return UNREACHABLE, str(error)
    if isinstance(error, TokenRequestError):
        unreachable = error.transport is not None or error.status is None or error.status >= 500
        return (UNREACHABLE if unreachable else REJECTED), str(error)
    if isinstance(error, ImportError):
        return USAGE, f"tokenward is not installed correctly: {error}"
    return USAGE, f"unexpected error: {type(error).__name__}: {error}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from .. import __version__

        print(f"tokenward {__version__}")
        return OK
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.run(args)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        print("tokenward: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return OK
    except Exception as error:  # the top-level handler: one line, never a traceback
        code, line = _exit_code(error)
        if args.verbose:
            logging.getLogger("tokenward.cli").debug("failure", exc_info=error)
        print(f"tokenward {args.command}: {' '.join(line.split())}", file=sys.stderr)
        return code
