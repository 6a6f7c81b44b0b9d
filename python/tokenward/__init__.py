"""tokenward: verify OIDC bearer tokens and fetch client-credentials tokens, with a Rust core."""

from ._native import __version__
from .errors import (
    ConfigError,
    ExpiredToken,
    InvalidToken,
    KeySetUnavailable,
    TokenRequestError,
    TokenwardError,
)
from .token_client import TokenClient
from .verifier import Verifier

__all__ = [
    "ConfigError",
    "ExpiredToken",
    "InvalidToken",
    "KeySetUnavailable",
    "TokenClient",
    "TokenRequestError",
    "TokenwardError",
    "Verifier",
    "__version__",
]
