"""The backend side of `tokenward.smartem`: `verify_token`, the FastAPI dependency.

Imported by `tokenward.smartem` only when `verify_token` is first asked for, because it needs
FastAPI and the agent must not. Users import `verify_token` from `tokenward.smartem`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import HTTPConnection

from . import smartem
from ._bearer import SMARTEM_TEXTS
from .errors import TokenwardError
from .fastapi import Authenticator
from .verifier import Verifier

__all__ = ["verify_token"]


def _authenticator(verifier: Verifier | Callable[[], Verifier]) -> Authenticator:
    """SmartEM's backend as an `Authenticator`: its texts and exempt paths, no allowlist."""
    return Authenticator(
        verifier,
        role_clients=(),
        exempt_paths=smartem.EXEMPT_PATHS,
        allowlist=False,
        retry_after=smartem.RETRY_AFTER_SECONDS,
        texts=SMARTEM_TEXTS,
        logger=smartem.logger,
    )


def _refusing(exc: TokenwardError) -> Callable[[], Verifier]:
    def make() -> Verifier:
        raise exc

    return make


#: The authenticator and the verifier it was made for. Replaced whole, one reference swap, when
#: `smartem._jwks_client` changes (`set_verifier`, `reset_verifier`, a test setting it), so a
#: request in flight finishes with the one it started with.
_current: tuple[Verifier, Authenticator] | None = None


def _backend() -> Authenticator:
    global _current
    verifier = smartem._jwks_client
    if verifier is None:
        try:
            verifier = smartem._get_jwks_client()
        except TokenwardError as exc:
            # Not configured: an authenticator whose verifier is this error answers 500 (and
            # logs it) where a token is to be checked, and still 401 without one. Made per
            # request, because the next one reads the environment again.
            return _authenticator(_refusing(exc))
    current = _current
    if current is None or current[0] is not verifier:
        current = (verifier, _authenticator(verifier))
        _current = current
    return current[1]


async def verify_token(request: HTTPConnection) -> dict[str, Any] | None:
    """Route dependency: the verified claims, or None for an exempt path; 401 (or 503 when no
    signing keys can be had) otherwise. On a WebSocket route a refusal closes the handshake
    (1008)."""
    return await _backend().unshared_app_wide(request)
