"""tokenward: verify OIDC bearer tokens and fetch client-credentials tokens, with a Rust core.

`Verifier`, `TokenClient` and `__version__` come from the native extension, loaded on first
access: importing the package (as the pytest plugin's entry point does in every pytest run)
never fails or pays for the extension; the errors are plain Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_getattr
from .errors import (
    ConfigError,
    ExpiredToken,
    InvalidToken,
    KeySetUnavailable,
    StreamError,
    TokenRequestError,
    TokenwardError,
)

if TYPE_CHECKING:
    from ._native import __version__
    from .token_client import TokenClient
    from .verifier import Verifier

__all__ = [
    "ConfigError",
    "ExpiredToken",
    "InvalidToken",
    "KeySetUnavailable",
    "StreamError",
    "TokenClient",
    "TokenRequestError",
    "TokenwardError",
    "Verifier",
    "__version__",
]

_HOMES = {"Verifier": ".verifier", "TokenClient": ".token_client", "__version__": "._native"}


__getattr__ = lazy_getattr(__name__, globals(), _HOMES)
