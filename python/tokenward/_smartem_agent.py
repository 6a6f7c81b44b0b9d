"""The agent side of `tokenward.smartem`: `KeycloakConfig`, `load_keycloak_config`,
`KeycloakClient` and its exceptions.

Only `requests` (for the exception classes) and the extension are imported: the agent is a
requests program packaged on its own, and must not carry FastAPI, Starlette or pydantic. Users
import these names from `tokenward.smartem`.
"""

from __future__ import annotations

import http
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import requests

from ._keycloak_env import KeycloakConfigError, close_to_known, refuse_realm_in_url, warn_typos
from ._native import issuer_paths, realm_issuer
from .errors import ConfigError, TokenRequestError

if TYPE_CHECKING:
    from typing_extensions import Self

    from .token_client import TokenClient

__all__ = [
    "CONFIG_KEYS",
    "KeycloakClient",
    "KeycloakConfig",
    "KeycloakConnectTimeout",
    "KeycloakConnectionError",
    "KeycloakHTTPError",
    "KeycloakReadTimeout",
    "KeycloakResponseError",
    "KeycloakTimeout",
    "KeycloakTokenError",
    "load_keycloak_config",
]

logger = logging.getLogger("tokenward.smartem")

#: The keys `load_keycloak_config` requires, in the order of `KeycloakConfig`'s fields.
CONFIG_KEYS: tuple[str, ...] = (
    "KEYCLOAK_URL",
    "KEYCLOAK_REALM",
    "KEYCLOAK_CLIENT_ID",
    "KEYCLOAK_CLIENT_SECRET",
)
#: What `tokenward agent enrol` writes in place of KEYCLOAK_CLIENT_SECRET: the agent signs its
#: client assertions with this key (private_key_jwt) and holds no shared secret.
KEY_FILE_KEY = "AGENT_PRIVATE_KEY_FILE"


@dataclass(frozen=True)
class KeycloakConfig:
    """The four values needed to obtain an agent token. The secret is left out of repr().

    `private_key_file`, set instead of a secret (`client_secret=""`), is the PEM key of an
    enrolled agent (docs/agents.md): its token requests are signed (private_key_jwt)."""

    url: str
    realm: str
    client_id: str
    client_secret: str = field(repr=False)
    private_key_file: str | None = None

    @property
    def token_url(self) -> str:
        """The realm's token endpoint. Raises `KeycloakConfigError` when `url` already contains
        the realm path (the realm belongs in `realm`)."""
        refuse_realm_in_url(self.url, "KEYCLOAK_URL")
        return realm_issuer(self.url, self.realm) + issuer_paths()["token"]


# ---- the file ------------------------------------------------------------------------------------

#: The backslash escapes of a double-quoted dotenv value (python-dotenv's set).
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "n": "\n"}
_ESCAPES |= {"r": "\r", "t": "\t", "v": "\v"}
_ESCAPE = re.compile(r"\\(.)")
#: A quoted value, then optionally a comment, as dotenv allows.
_QUOTED = {
    '"': re.compile(r'"((?:[^"\\]|\\.)*)"\s*(?:#.*)?'),
    "'": re.compile(r"'((?:[^'\\]|\\.)*)'\s*(?:#.*)?"),
}


def _unquote(value: str, key: str, path: Path, line: int) -> str:
    """A value as dotenv files write it: `"..."` with backslash escapes, `'...'` literally (but
    for `\\'` and `\\\\`), either optionally followed by a `#` comment; anything else as it stands. A
    quote that is opened and not closed is an error rather than part of the value: it would
    otherwise end up in a URL or a secret."""
    if not value or value[0] not in _QUOTED:
        return value
    quote = value[0]
    match = _QUOTED[quote].fullmatch(value)
    if match is None:
        raise KeycloakConfigError(
            f"{key} in {path} (line {line}) opens a {quote} quote that is not closed, or has "
            "more after the closing quote than a comment",
            setting=key,
            path=str(path),
        )
    inner = match.group(1)
    if quote == "'":
        return re.sub(r"\\([\\'])", r"\1", inner)
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), inner)


def load_keycloak_config(path: str | os.PathLike[str]) -> KeycloakConfig:
    """Read a KEY=VALUE file with KEYCLOAK_URL, KEYCLOAK_REALM, KEYCLOAK_CLIENT_ID and
    KEYCLOAK_CLIENT_SECRET, or AGENT_PRIVATE_KEY_FILE in place of the secret (the file
    `tokenward agent enrol` writes). Both at once is refused: which credential the agent
    presents must not depend on a precedence rule.

    Blank lines and lines starting with `#` are skipped, as are lines without `=`; keys and
    values are stripped; a value in matching quotes is unquoted as dotenv files are written
    (`"..."` with backslash escapes, `'...'` literally); a later line wins over an earlier one.
    A key that looks like a typo of one of the four is warned about (once).

    Raises FileNotFoundError when the file does not exist, and `KeycloakConfigError` (a
    ValueError) naming the file and the key otherwise: every required key that is missing or
    empty, an unclosed quote, a KEYCLOAK_URL that already contains the realm path, or a value
    the token client refuses."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, f"Keycloak configuration file not found at {path}", str(path))
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            logger.debug("Ignoring line %d of %s: it has no '='", number, path)
            continue
        key = key.strip()
        values[key] = _unquote(value.strip(), key, path, number)
    known = (*CONFIG_KEYS, KEY_FILE_KEY)
    warn_typos(values, str(path), known=known)
    key_file = values.get(KEY_FILE_KEY) or None
    if key_file and values.get("KEYCLOAK_CLIENT_SECRET"):
        raise KeycloakConfigError(
            f"Keycloak configuration at {path} sets both KEYCLOAK_CLIENT_SECRET and "
            f"{KEY_FILE_KEY}: keep the one this agent is registered with",
            setting=KEY_FILE_KEY,
            path=str(path),
        )
    required = CONFIG_KEYS[:3] if key_file else CONFIG_KEYS
    missing = [key for key in required if not values.get(key)]
    if missing:
        hints = {}
        for name in values:
            suggestion = close_to_known(name, known)
            if suggestion in missing:
                hints[suggestion] = name
        raise KeycloakConfigError(
            f"Keycloak configuration at {path} is missing or has empty values for: "
            + ", ".join(
                f"{key} ({hints[key]} is set: a typo?)" if key in hints else key for key in missing
            ),
            setting=missing[0],
            path=str(path),
        )
    url, realm, client_id, secret = (values.get(key, "") for key in CONFIG_KEYS)
    config = KeycloakConfig(url, realm, client_id, secret, private_key_file=key_file)
    refuse_realm_in_url(config.url, "KEYCLOAK_URL", str(path))
    # Built and dropped: the core checks the values now, so a refusal names this file.
    _token_client(config, str(path))
    return config


#: The token client's setting each of the file's keys becomes.
_SETTING_KEYS = {
    "token_url": "KEYCLOAK_URL",
    "client_id": "KEYCLOAK_CLIENT_ID",
    "client_secret": "KEYCLOAK_CLIENT_SECRET",
    "private_key": KEY_FILE_KEY,
}


def _token_client(
    config: KeycloakConfig, path: str | None, *, refresh_margin: float = 30.0, timeout: float = 10.0
) -> TokenClient:
    """The token client of `config`. Its settings are checked by the core, and a refusal is
    re-raised naming the key (and the file) they came from, not the core's setting."""
    from .token_client import TokenClient

    token_url = config.token_url
    key_file = config.private_key_file
    try:
        return TokenClient(
            token_url,
            client_id=config.client_id,
            client_secret=config.client_secret if key_file is None else None,
            private_key=None if key_file is None else _read_key(key_file, path),
            refresh_margin=refresh_margin,
            timeout=timeout,
        )
    except ConfigError as exc:
        key = _SETTING_KEYS.get(exc.setting or "")
        if key is None:
            raise
        where = f" in {path}" if path else ""
        detail = f"{config.url!r} (token URL {token_url!r})" if key == "KEYCLOAK_URL" else ""
        raise KeycloakConfigError(
            f"{key}{where} is refused: {detail}{': ' if detail else ''}{exc}",
            setting=key,
            path=path,
        ) from exc


def _read_key(key_file: str, path: str | None) -> bytes:
    """The agent's PEM key; a file that cannot be read is named, its content never."""
    try:
        return Path(key_file).read_bytes()
    except OSError as exc:
        where = f" in {path}" if path else ""
        raise KeycloakConfigError(
            f"{KEY_FILE_KEY}{where}: cannot read {key_file}: {exc.strerror}",
            setting=KEY_FILE_KEY,
            path=path,
        ) from None


# ---- the exceptions ------------------------------------------------------------------------------


class KeycloakTokenError(requests.RequestException):
    """The token endpoint failed. A `requests.RequestException`, so retry loops written for
    the `requests`-based client keep working; what is raised is one of its subclasses, each
    also the `requests` class SmartEM's own client raised for that failure:
    `KeycloakHTTPError` (an error status), `KeycloakConnectionError` (Keycloak could not be
    reached), `KeycloakTimeout`, `KeycloakResponseError` (a success status without a usable
    token).

    `status` (None when Keycloak never answered), `error` (the OAuth2 error code) and
    `retryable` come from the underlying `tokenward.TokenRequestError`, kept in
    `token_error` (and as `__cause__`)."""

    def __init__(
        self,
        message: str,
        *,
        token_error: TokenRequestError | None = None,
        response: requests.Response | None = None,
    ) -> None:
        super().__init__(message, response=response)
        self.token_error = token_error
        self.status: int | None = token_error.status if token_error else None
        self.error: str | None = token_error.error if token_error else None
        self.retryable: bool = token_error.retryable if token_error else False


class KeycloakHTTPError(KeycloakTokenError, requests.HTTPError):
    """Keycloak answered with an error status (what `raise_for_status` raised). `response`
    carries `status_code`, `reason` and `url`; its body is empty, because the core does not
    hand the body out (an IdP may echo a credential). The OAuth2 error is in the message and
    in `error`."""


class KeycloakConnectionError(KeycloakTokenError, requests.ConnectionError):
    """Keycloak could not be reached (refused, reset, DNS, TLS): no answer at all."""


class KeycloakTimeout(KeycloakTokenError, requests.Timeout):
    """Keycloak did not answer in time; what is raised is one of the two below."""


class KeycloakConnectTimeout(KeycloakTimeout, requests.ConnectTimeout):
    """No connection to Keycloak within the timeout: a `requests.ConnectTimeout`, and so also a
    `requests.ConnectionError`, as with SmartEM's client."""


class KeycloakReadTimeout(KeycloakTimeout, requests.ReadTimeout):
    """Connected, but Keycloak's answer did not come within the timeout."""


class KeycloakResponseError(KeycloakTokenError, ValueError):
    """Keycloak answered with a success status but no usable token (not JSON, no
    `access_token`, an `error` member): a `ValueError`, as the JSON decoding of SmartEM's client
    raised (it raised `KeyError` for a missing `access_token`)."""


def _response(status: int, url: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.url = url
    try:
        response.reason = http.HTTPStatus(status).phrase
    except ValueError:
        response.reason = ""
    return response


def keycloak_error(exc: TokenRequestError, token_url: str) -> KeycloakTokenError:
    """The `KeycloakTokenError` subclass for a failure of the core's token client."""
    message = f"Keycloak token fetch failed: {exc}"
    if exc.status is not None and exc.status >= 400:
        return KeycloakHTTPError(
            message, token_error=exc, response=_response(exc.status, token_url)
        )
    if exc.status is not None:
        return KeycloakResponseError(message, token_error=exc)
    if not exc.retryable:
        # Failed before anything was sent (e.g. an assertion that cannot be signed).
        return KeycloakTokenError(message, token_error=exc)
    if exc.transport == "connect_timeout":
        return KeycloakConnectTimeout(message, token_error=exc)
    if exc.transport == "timeout":
        return KeycloakReadTimeout(message, token_error=exc)
    # "connect", "dropped": no (complete) answer came.
    return KeycloakConnectionError(message, token_error=exc)


# ---- the client ----------------------------------------------------------------------------------


class KeycloakClient:
    """Client-credentials access tokens for the agent, over `tokenward.TokenClient`.

    `get_token()` returns a cached token until `refresh_buffer_seconds` before it expires, then
    fetches a new one; concurrent callers share one fetch. `invalidate()` drops the cached token
    (after a 401 from the backend) so the next `get_token()` fetches anew. Safe to share between
    threads. Token-endpoint failures raise a `KeycloakTokenError` subclass: a
    `requests.HTTPError`, `ConnectionError` or `Timeout` as SmartEM's client raised.

    Raises `KeycloakConfigError` (a ValueError) when the configuration is refused, naming the
    key (a KEYCLOAK_URL that contains the realm path, or that is not an http(s) URL).
    """

    def __init__(
        self,
        config: KeycloakConfig,
        refresh_buffer_seconds: int = 30,
        timeout: float = 10.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self._config = config
        self._logger = logger or logging.getLogger("tokenward.smartem.keycloak_client")
        self._client: TokenClient = _token_client(
            config, None, refresh_margin=refresh_buffer_seconds, timeout=timeout
        )
        #: SmartEM's client kept the URL it posts to here; its tests read it.
        self._token_url: str = config.token_url

    @property
    def client_id(self) -> str:
        return self._config.client_id

    @property
    def token_url(self) -> str:
        return self._token_url

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
        return keycloak_error(exc, self._token_url)

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
