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
from .verifier import Verifier

__all__ = [
    "__version__",
    "ConfigError",
    "ExpiredToken",
    "InvalidToken",
    "KeySetUnavailable",
    "TokenRequestError",
    "TokenwardError",
    "Verifier",
]
