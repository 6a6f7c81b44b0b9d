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
- It is a `tokenward.fastapi.Authenticator` with SmartEM's texts (`tokenward._bearer`'s
  `SMARTEM_TEXTS`) and exempt paths, and no allowlist; not a second implementation.

Agent (`from tokenward.smartem import KeycloakConfig, load_keycloak_config, KeycloakClient`):
see `KeycloakClient`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import requests
from starlette.requests import HTTPConnection

from ._bearer import SMARTEM_TEXTS
from ._native import issuer_paths, realm_issuer
from .errors import TokenRequestError
from .fastapi import Authenticator
from .verifier import Verifier

if TYPE_CHECKING:
    from typing_extensions import Self

    from .token_client import TokenClient

__all__ = [
    "CONFIG_KEYS",
    "EXEMPT_PATHS",
    "JWT_LEEWAY_SECONDS",
    "RETRY_AFTER_SECONDS",
    "KeycloakClient",
    "KeycloakConfig",
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

# ---- backend -------------------------------------------------------------------------------------


def _authenticator(verifier: Verifier | None = None) -> Authenticator:
    """SmartEM's backend as an `Authenticator`: its texts and exempt paths, no allowlist, and
    (without `verifier`) `Verifier.from_env(leeway=JWT_LEEWAY_SECONDS)` made on first use."""
    return Authenticator(
        verifier,
        verifier_settings=None if verifier is not None else {"leeway": JWT_LEEWAY_SECONDS},
        role_clients=(),
        exempt_paths=EXEMPT_PATHS,
        allowlist=False,
        retry_after=RETRY_AFTER_SECONDS,
        texts=SMARTEM_TEXTS,
        logger=logger,
    )


#: Replaced whole by `set_verifier` / `reset_verifier`: one reference swap, so a request in
#: flight finishes with the authenticator it started with.
_backend = _authenticator()


def set_verifier(verifier: Verifier | None) -> None:
    """Use this verifier instead of one built from the environment (None: back to that)."""
    global _backend
    _backend = _authenticator(verifier)


def reset_verifier() -> None:
    """Forget the verifier, so the next request reads the environment again."""
    set_verifier(None)


async def verify_token(request: HTTPConnection) -> dict[str, Any] | None:
    """Route dependency: the verified claims, or None for an exempt path; 401 (or 503 when no
    signing keys can be had) otherwise. On a WebSocket route a refusal closes the handshake
    (1008)."""
    return await _backend.unshared_app_wide(request)


# ---- agent ---------------------------------------------------------------------------------------

#: The keys `load_keycloak_config` requires, in the order of `KeycloakConfig`'s fields.
CONFIG_KEYS: tuple[str, ...] = (
    "KEYCLOAK_URL",
    "KEYCLOAK_REALM",
    "KEYCLOAK_CLIENT_ID",
    "KEYCLOAK_CLIENT_SECRET",
)


@dataclass(frozen=True)
class KeycloakConfig:
    """The four values needed to obtain an agent token. The secret is left out of repr()."""

    url: str
    realm: str
    client_id: str
    client_secret: str = field(repr=False)

    @property
    def token_url(self) -> str:
        return realm_issuer(self.url, self.realm) + issuer_paths()["token"]


def load_keycloak_config(path: str | os.PathLike[str]) -> KeycloakConfig:
    """Read a KEY=VALUE file with KEYCLOAK_URL, KEYCLOAK_REALM, KEYCLOAK_CLIENT_ID and
    KEYCLOAK_CLIENT_SECRET.

    Blank lines and lines starting with `#` are skipped, as are lines without `=`; keys and
    values are stripped; quotes are not interpreted; a later line wins over an earlier one.

    Raises FileNotFoundError when the file does not exist, ValueError naming every required
    key that is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, f"Keycloak configuration file not found at {path}", str(path))
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8-sig").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            logger.debug("Ignoring a line without '=' in %s", path)
            continue
        values[key.strip()] = value.strip()
    missing = [key for key in CONFIG_KEYS if not values.get(key)]
    if missing:
        raise ValueError(
            f"Keycloak configuration at {path} is missing or has empty values for: "
            + ", ".join(missing)
        )
    return KeycloakConfig(*(values[key] for key in CONFIG_KEYS))


class KeycloakTokenError(requests.RequestException):
    """The token endpoint failed. A `requests.RequestException`, so retry loops written for
    the `requests`-based client keep working.

    `status` (None when Keycloak never answered), `error` (the OAuth2 error code) and
    `retryable` come from the underlying `tokenward.TokenRequestError`, kept in
    `token_error` (and as `__cause__`)."""

    def __init__(self, message: str, *, token_error: TokenRequestError | None = None) -> None:
        super().__init__(message)
        self.token_error = token_error
        self.status: int | None = token_error.status if token_error else None
        self.error: str | None = token_error.error if token_error else None
        self.retryable: bool = token_error.retryable if token_error else False


class KeycloakClient:
    """Client-credentials access tokens for the agent, over `tokenward.TokenClient`.

    `get_token()` returns a cached token until `refresh_buffer_seconds` before it expires, then
    fetches a new one; concurrent callers share one fetch. `invalidate()` drops the cached token
    (after a 401 from the backend) so the next `get_token()` fetches anew. Safe to share between
    threads. Token-endpoint failures raise `KeycloakTokenError` (a `requests.RequestException`).
    """

    def __init__(
        self,
        config: KeycloakConfig,
        refresh_buffer_seconds: int = 30,
        timeout: float = 10.0,
        logger: logging.Logger | None = None,
    ) -> None:
        from .token_client import TokenClient

        self._config = config
        self._logger = logger or logging.getLogger("tokenward.smartem.keycloak_client")
        self._client: TokenClient = TokenClient(
            config.token_url,
            client_id=config.client_id,
            client_secret=config.client_secret,
            refresh_margin=refresh_buffer_seconds,
            timeout=timeout,
        )

    @property
    def client_id(self) -> str:
        return self._config.client_id

    @property
    def token_url(self) -> str:
        return self._config.token_url

    @property
    def token_client(self) -> TokenClient:
        """The underlying `tokenward.TokenClient` (e.g. for `tokenward.httpx.BearerAuth`)."""
        return self._client

    def get_token(self) -> str:
        """A valid access token, fetched or refreshed as needed."""
        try:
            return self._client.get_token()
        except TokenRequestError as exc:
            raise self._token_error(exc) from exc

    async def get_token_async(self) -> str:
        """`get_token` without blocking the event loop."""
        try:
            return await self._client.get_token_async()
        except TokenRequestError as exc:
            raise self._token_error(exc) from exc

    def invalidate(self, token: str | None = None) -> bool:
        """Drop the cached token (with `token`: only if it is still the cached one). Returns
        whether a token was dropped."""
        return self._client.invalidate(token)

    def close(self) -> None:
        """Drop the cached token and release the client. Idempotent."""
        self._client.invalidate()
        close = getattr(self._client, "close", None)
        if callable(close):
            close()

    def _token_error(self, exc: TokenRequestError) -> KeycloakTokenError:
        self._logger.error(
            "Keycloak token fetch failed (client_id=%s, status=%s, error=%s): %s",
            self._config.client_id,
            exc.status,
            exc.error,
            exc,
        )
        return KeycloakTokenError(f"Keycloak token fetch failed: {exc}", token_error=exc)

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"KeycloakClient(client_id={self.client_id!r}, token_url={self.token_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
