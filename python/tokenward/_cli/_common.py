"""What every subcommand shares: exit codes, the one-line failure, output, secrets and HTTP."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

#: The exit codes (README.md, "Command line").
OK = 0
REJECTED = 1
USAGE = 2
UNREACHABLE = 3


class Fail(Exception):
    """Ends the command with `message` on one line of stderr and exit `code`."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def user_agent() -> str:
    from .. import __version__

    return f"tokenward/{__version__}"


def read_secret(
    *, secret_file: str | None, env_names: tuple[str, ...], prompt: str, required: bool
) -> str | None:
    """A secret from `secret_file`, else the first of `env_names` set, else a prompt (never
    echoed) when stdin is a terminal. Never from an argument: it would land in shell history."""
    if secret_file is not None:
        try:
            with open(secret_file, encoding="utf-8") as f:
                secret = f.read().strip()
        except OSError as e:
            raise Fail(f"cannot read --secret-file {secret_file}: {e.strerror}", USAGE) from None
        if not secret:
            raise Fail(f"--secret-file {secret_file} is empty", USAGE)
        return secret
    for name in env_names:
        if os.environ.get(name):
            return os.environ[name]
    if sys.stdin.isatty():
        return getpass.getpass(prompt) or None
    if required:
        names = " or ".join(env_names)
        raise Fail(f"no secret: use --secret-file, set {names}, or run in a terminal", USAGE)
    return None


def read_token_argument(value: str | None) -> str:
    """The token given as an argument, or read from stdin for `-` (or no argument), with a
    pasted `Authorization: Bearer ` or `Bearer ` prefix removed."""
    if value is None or value == "-":
        if sys.stdin.isatty():
            raise Fail("no token: pass it as an argument or on stdin (-)", USAGE)
        value = sys.stdin.read()
    token = value.strip()
    if token.lower().startswith("authorization:"):
        token = token.split(":", 1)[1].strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise Fail("no token: the input is empty", USAGE)
    return token


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as e:
        raise Fail(f"cannot use --ca-bundle {ca_bundle}: {e}", USAGE) from None


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


def http_request(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    ca_bundle: str | None = None,
    timeout: float = 10.0,
) -> Response:
    """One HTTP exchange; any status is an answer, only a failure to get one raises (exit 3)."""
    if not url.startswith(("http://", "https://")):
        raise Fail(f"not an http(s) URL: {url}", USAGE)
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("User-Agent", user_agent())
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    context = ssl_context(ca_bundle) if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            return Response(answer.status, answer.reason, dict(answer.headers), answer.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, str(e.reason), dict(e.headers), e.read())
    except urllib.error.URLError as e:
        raise Fail(f"cannot reach {url}: {e.reason}", UNREACHABLE) from None
    except (OSError, ValueError) as e:
        raise Fail(f"cannot reach {url}: {e}", UNREACHABLE) from None


def issuer_or_env(issuer: str | None) -> str:
    """`issuer`, else the realm issuer of KEYCLOAK_URL and KEYCLOAK_REALM (default "dls")."""
    if issuer:
        return issuer.rstrip("/")
    url = os.environ.get("KEYCLOAK_URL")
    if not url:
        raise Fail("no issuer: give one, or set KEYCLOAK_URL (and KEYCLOAK_REALM)", USAGE)
    from .._native import realm_issuer

    return realm_issuer(url, os.environ.get("KEYCLOAK_REALM") or "dls")
