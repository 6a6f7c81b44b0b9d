"""Drop-in replacements for SmartEM Decisions' `smartem_backend.auth` and
`smartem_backend.keycloak_client`.

Backend (`from tokenward.smartem import verify_token, EXEMPT_PATHS, JWT_LEEWAY_SECONDS`):

- `verify_token(request)` is an `async def` taking a Starlette `HTTPConnection` (a `Request`,
  or a `WebSocket` on a WebSocket route), for `FastAPI(dependencies=[Depends(verify_token)])`
  and `app.dependency_overrides[verify_token]`. It returns None for `EXEMPT_PATHS` (exact
  match on the path the app routes, below any `root_path` or `Mount` prefix) and the verified
  claims otherwise. A refused WebSocket handshake is closed with 1008 (the client sees HTTP
  403), as `tokenward.middleware` does.
- Configuration from the environment, read when the first token is checked (again after
  `reset_verifier()`): KEYCLOAK_URL (required), KEYCLOAK_REALM (default "dls"),
  KEYCLOAK_VERIFY_ISS (default true), KEYCLOAK_ALLOWED_AZP (comma list; unset or empty:
  any azp), plus tokenward's optional KEYCLOAK_AUDIENCE and KEYCLOAK_JWKS_URL.
  Without KEYCLOAK_URL every non-exempt request is refused with 500 ("Authentication is not
  configured") and an ERROR log: authentication is never silently switched off.
- Answers, all 401 with `WWW-Authenticate: Bearer`:
  no `Authorization` header or another scheme: "Missing or malformed Authorization header";
  `Bearer` with nothing after it: "Empty bearer token";
  InvalidToken code `unknown_kid`: "Cannot resolve signing key";
  code `expired`: "Token expired"; code `azp_not_allowed`: "Token azp not permitted";
  any other code, or a token that is not an RFC 6750 b64token: "Invalid token".
  Two `Authorization` headers: 400 "Multiple Authorization headers" (RFC 6750
  `invalid_request`).
  When no signing keys can be had at all (JWKS unreachable, nothing cached): 503 with
  `Retry-After`, not 401.
- Variables named like one of these but misspelt are warned about (once); a KEYCLOAK_URL that
  already contains the realm path is refused (500, ERROR log naming it), not doubled.
- It is a `tokenward.fastapi.Authenticator` with SmartEM's texts (`tokenward._bearer`'s
  `SMARTEM_TEXTS`) and exempt paths, and no allowlist; not a second implementation.

Agent (`from tokenward.smartem import KeycloakConfig, load_keycloak_config, KeycloakClient`):
see `KeycloakClient`. These names need only `requests`: the backend's `verify_token` (and
FastAPI with it) is imported when it is first used (a module `__getattr__`), so an agent
packaged without FastAPI, Starlette and pydantic imports this module as it is.

SmartEM's tests reach into the module they replace; these seams behave as SmartEM's did:
`_jwks_client` (the backend's verifier; set it to None and the next request builds a new one
from the environment), `_get_jwks_client()` (that verifier, built if need be; raises
`KeycloakConfigError`, a RuntimeError, naming KEYCLOAK_URL when it is unset), `_issuer()`,
`_jwks_url()` and `_allowed_azps()`.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from ._bearer import Lazy
from ._keycloak_env import KeycloakConfigError
from ._native import issuer_paths
from ._smartem_agent import (
    CONFIG_KEYS,
    KeycloakClient,
    KeycloakConfig,
    KeycloakConnectionError,
    KeycloakConnectTimeout,
    KeycloakHTTPError,
    KeycloakReadTimeout,
    KeycloakResponseError,
    KeycloakTimeout,
    KeycloakTokenError,
    load_keycloak_config,
)
from .errors import ConfigError
from .verifier import Verifier

if TYPE_CHECKING:
    # For type checkers only: at run time it comes from `__getattr__`, with FastAPI.
    from ._smartem_backend import verify_token

__all__ = [
    "CONFIG_KEYS",
    "EXEMPT_PATHS",
    "JWT_LEEWAY_SECONDS",
    "RETRY_AFTER_SECONDS",
    "KeycloakClient",
    "KeycloakConfig",
    "KeycloakConfigError",
    "KeycloakConnectTimeout",
    "KeycloakConnectionError",
    "KeycloakHTTPError",
    "KeycloakReadTimeout",
    "KeycloakResponseError",
    "KeycloakTimeout",
    "KeycloakTokenError",
    "load_keycloak_config",
    "reset_verifier",
    "set_verifier",
    "verify_token",
]

logger = logging.getLogger("tokenward.smartem")

EXEMPT_PATHS: frozenset[str] = frozenset({"/health", "/status", "/openapi.json", "/docs", "/redoc"})

#: Clock skew tolerated on exp, nbf and iat.
JWT_LEEWAY_SECONDS = 60

#: The `Retry-After` of the 503 sent while no signing keys can be had.
RETRY_AFTER_SECONDS = 30

# ---- the backend's verifier (no FastAPI needed) ---------------------------------------------------

#: The backend's verifier, None until the first token is checked. Named as SmartEM named its
#: PyJWKClient, because SmartEM's tests reset it with `monkeypatch.setattr(auth, "_jwks_client",
#: None)`: `verify_token` reads it on every request, so that reset takes effect at once.
_jwks_client: Verifier | None = None


def _make_verifier() -> Verifier:
    try:
        return Verifier.from_env(leeway=JWT_LEEWAY_SECONDS)
    except KeycloakConfigError:
        raise
    except ConfigError as exc:
        # Both what tokenward raises and what SmartEM's `_get_jwks_client` raised.
        raise KeycloakConfigError(str(exc), setting=exc.setting) from exc


_verifier_once: Lazy[Verifier] = Lazy(sys.modules[__name__], "_jwks_client", _make_verifier)


def _get_jwks_client() -> Verifier:
    """The backend's verifier, built from the environment on first use. Raises
    `KeycloakConfigError` (a ConfigError and a RuntimeError) naming the setting when the
    environment is incomplete or wrong (KEYCLOAK_URL unset, or containing the realm path)."""
    return _verifier_once.get()


def set_verifier(verifier: Verifier | None) -> None:
    """Use this verifier instead of one built from the environment (None: back to that)."""
    _verifier_once.set(verifier)


def reset_verifier() -> None:
    """Forget the verifier, so the next request reads the environment again."""
    set_verifier(None)


def _issuer() -> str:
    """The issuer the verifier checks, from the environment (read now)."""
    return Verifier.from_env().issuer


def _jwks_url() -> str:
    """Where the realm's keys are when discovery does not say otherwise: KEYCLOAK_JWKS_URL, or
    the path Keycloak serves them at below the issuer (read now)."""
    return os.environ.get("KEYCLOAK_JWKS_URL", "").strip() or _issuer() + issuer_paths()["jwks"]


def _allowed_azps() -> frozenset[str]:
    """KEYCLOAK_ALLOWED_AZP as the verifier reads it: a comma list, entries trimmed, empty ones
    dropped; empty or unset means any `azp` (read now)."""
    raw = os.environ.get("KEYCLOAK_ALLOWED_AZP", "")
    return frozenset(item.strip() for item in raw.split(",") if item.strip())


# ---- the backend's dependency (FastAPI, imported on first use) -------------------------------------


def __getattr__(name: str) -> Any:
    # PEP 562: only the names that need FastAPI are looked up here, so `import tokenward.smartem`
    # (and the agent's names) work where FastAPI is not installed.
    if name == "verify_token":
        try:
            from . import _smartem_backend
        except ModuleNotFoundError as exc:
            raise ImportError(
                f"tokenward.smartem.verify_token needs FastAPI ({exc.name} is not installed): "
                "pip install 'tokenward[fastapi]'",
                name=name,
            ) from exc
        globals()[name] = _smartem_backend.verify_token
        return _smartem_backend.verify_token
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "verify_token"})
