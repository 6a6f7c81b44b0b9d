"""Fred's `oidc` module: `decode_jwt`, the `get_current_user` dependencies and the Keycloak
settings, verified by tokenward's `Verifier` (see README, "Fred").

Settings live in a `FredSecurity` object. `initialize_user_security(config)` makes the
process-wide one (Fred's global); `initialize_user_security(config, app=app)` also keeps it
in `app.state`, where the module-level `get_current_user` finds it first, so two apps in one
process each keep their own realm and client.
"""

from __future__ import annotations

import base64
import getpass
import json
import logging
import os
from typing import Any, Protocol

from fastapi import HTTPException, Request, Security
from fastapi.security import OAuth2PasswordBearer

from .._bearer import (
    FRED_INVERTED_LIFETIME,
    FRED_TEXTS,
    NoCredentials,
    NotAllowlisted,
    Refusable,
    refusal,
    unauthorized,
)
from ..allowlist import EmailAllowlist
from ..errors import ConfigError, InvalidToken, KeySetUnavailable
from ..fastapi import User
from ..verifier import Verifier
from ._allowlist import current_allowlist
from ._exchange import ExchangeSetting, ForwardingExchange
from ._settings import FredSettings
from ._user import KeycloakUser

__all__ = [
    "FredSecurity",
    "decode_jwt",
    "get_current_user",
    "get_current_user_without_gcu",
    "get_keycloak_client_id",
    "get_keycloak_url",
    "initialize_user_security",
    "oauth2_scheme",
    "split_realm_url",
]

logger = logging.getLogger("tokenward.fred")

#: Fred's scheme: the token, or None when there is none (the dependency answers the 401).
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)


def split_realm_url(realm_url: str) -> tuple[str, str]:
    """`http://host/realms/<realm>` -> (`http://host`, `<realm>`); ValueError otherwise."""
    url = str(realm_url).rstrip("/")
    base, marker, rest = url.partition("/realms/")
    realm = rest.split("/", 1)[0]
    if not marker or not realm:
        raise ValueError(f"Invalid keycloak_url (expected .../realms/<realm>): {realm_url}")
    return base, realm


class _UserSecurityLike(Protocol):
    enabled: bool
    client_id: str

    @property
    def realm_url(self) -> Any: ...


def _peek_lifetime_inverted(token: str) -> bool:
    """Whether the (unverified) payload has `exp < iat`: only to word the refusal of a token
    the verifier already rejected as `bad_claim`."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        iat, exp = claims.get("iat"), claims.get("exp")
        return isinstance(iat, (int, float)) and isinstance(exp, (int, float)) and exp < iat
    except (ValueError, IndexError, AttributeError):
        return False


def _answer(exc: Refusable, token: str | None = None) -> HTTPException:
    """Fred's answer to `exc`, from the one refusal table (`tokenward._bearer`), logged."""
    answer = refusal(exc, FRED_TEXTS, logger=logger)
    inverted = token is not None and _peek_lifetime_inverted(token)
    if isinstance(exc, InvalidToken) and exc.code == "bad_claim" and inverted:
        detail = FRED_INVERTED_LIFETIME
        answer = unauthorized(detail, None, "invalid_token", detail)
    return HTTPException(*answer)


class FredSecurity:
    """One Fred service's authentication: its realm, client, `FRED_*` settings and whitelist.

    realm_url: `http(s)://host/realms/<realm>` (the issuer); client_id: the client whose
    roles make `KeycloakUser.roles`, and the audience under `strict_audience`. roles_client:
    take the roles from another client than `client_id` (a tokenward addition: a service
    whose audience is its own client while users' roles sit on the front end's client).
    settings: `FredSettings.from_env()` by default. allowlist: None consults the module's
    whitelist (`tokenward.fred.set_whitelist_path`, `$TOKENWARD_ALLOWLIST_FILE`), a path or an
    `EmailAllowlist` that one, False none. verifier: for tests; by default one is made from the
    settings on first use. exchange: `(client, audience)` makes forwarding (`user.bearer`)
    hand downstream a token exchanged for `audience` by `client` (this service's own
    confidential client: a `TokenClient`, `ClientCredentialsProvider` or `M2MTokenProvider`);
    None (default) forwards the user's own token."""

    def __init__(
        self,
        realm_url: str,
        client_id: str,
        *,
        enabled: bool = True,
        settings: FredSettings | None = None,
        allowlist: EmailAllowlist | str | os.PathLike[str] | bool | None = None,
        verifier: Verifier | None = None,
        roles_client: str | None = None,
        exchange: ExchangeSetting | None = None,
    ) -> None:
        self.realm_url = str(realm_url).rstrip("/")
        self.exchange = ForwardingExchange.of(exchange)
        self.base_url, self.realm = split_realm_url(self.realm_url)
        self.client_id = client_id
        self.roles_client = roles_client or client_id
        self.enabled = bool(enabled)
        self.settings = settings if settings is not None else FredSettings.from_env()
        if allowlist is True:
            raise TypeError("allowlist=True is ambiguous: pass a path or an EmailAllowlist")
        if allowlist is None or allowlist is False or isinstance(allowlist, EmailAllowlist):
            self._allowlist: EmailAllowlist | bool | None = allowlist
        else:
            self._allowlist = EmailAllowlist(allowlist, inline_comments=False)
        self._verifier = verifier if verifier is not None else self._make_verifier()

    @property
    def jwks_url(self) -> str:
        return f"{self.realm_url}/protocol/openid-connect/certs"

    def _make_verifier(self) -> Verifier:
        s = self.settings
        if s.max_lifetime <= 0:
            raise ConfigError(
                "FRED_JWT_MAX_LIFETIME_SECONDS must be a positive number of seconds",
                setting="FRED_JWT_MAX_LIFETIME_SECONDS",
            )
        for name, value in (
            ("FRED_JWT_CLOCK_SKEW", s.clock_skew),
            ("FRED_JWT_CACHE_SIZE", s.cache_size),
        ):
            if value < 0:
                raise ConfigError(f"{name} must not be negative", setting=name)
        strict_audience = s.strict_audience and bool(self.client_id)
        return Verifier(
            self.realm_url,
            jwks_uri=self.jwks_url,
            verify_issuer=s.strict_issuer,
            audience=self.client_id if strict_audience else None,
            algorithms=["RS256"],
            leeway=s.clock_skew,
            max_lifetime=s.max_lifetime,
            # The cache re-checks exp and the whole policy on every hit: Fred's TTL is moot.
            cache_size=s.cache_size if s.cache_enabled else 0,
        )

    @property
    def verifier(self) -> Verifier:
        return self._verifier

    @property
    def allowlist(self) -> EmailAllowlist | None:
        if self._allowlist is False:
            return None
        if self._allowlist is None or self._allowlist is True:
            return current_allowlist()
        return self._allowlist

    def __repr__(self) -> str:
        return (
            f"FredSecurity(realm_url={self.realm_url!r}, client_id={self.client_id!r}, "
            f"enabled={self.enabled})"
        )

    def log_initialized(self) -> None:
        s = self.settings
        logger.info(
            "[AUTH] Keycloak initialized: enabled=%s base=%s realm=%s client_id=%s jwks=%s "
            "strict_issuer=%s strict_audience=%s skew=%ss forwarding_exchange=%s",
            self.enabled, self.base_url, self.realm, self.client_id, self.jwks_url,
            s.strict_issuer, s.strict_audience, s.clock_skew,
            self.exchange.audience if self.exchange else None,
        )  # fmt: skip

    # ---- tokens to users -------------------------------------------------------------------

    def user_of(self, claims: dict[str, Any], token: str) -> KeycloakUser:
        sub = claims.get("sub")
        if not isinstance(sub, str):
            raise _answer(InvalidToken("the token has no string sub claim", "missing_claim"))
        user = User.from_claims(claims, token, (self.roles_client,), realm_roles=False)
        made = KeycloakUser(
            uid=user.uid,
            username=user.username or "",
            roles=list(user.roles),
            email=user.email,
            groups=list(user.groups),
        )
        made._token = token
        made._exchange = self.exchange
        return made

    def decode_jwt(self, token: str) -> KeycloakUser:
        """The user of `token` (sync: blocks, without the GIL, only while keys are fetched), or
        `HTTPException(401)` as Fred raises it."""
        if not self.enabled:
            username = getpass.getuser()
            return KeycloakUser(
                uid=username, username=username, roles=["admin"], email=f"{username}@localhost"
            )
        try:
            claims = self._verifier.verify(token)
        except (InvalidToken, KeySetUnavailable) as exc:
            raise _answer(exc, token) from None
        return self.user_of(claims, token)

    async def decode_jwt_async(self, token: str) -> KeycloakUser:
        """`decode_jwt`, awaiting the key fetch instead of blocking the event loop."""
        try:
            claims = await self._verifier.verify_async(token)
        except (InvalidToken, KeySetUnavailable) as exc:
            raise _answer(exc, token) from None
        return self.user_of(claims, token)

    async def current_user(self, token: str | None) -> KeycloakUser:
        """What `get_current_user_without_gcu` answers for this token."""
        if not self.enabled:
            return KeycloakUser(
                uid="admin", username="admin", roles=["admin"], email="admin@mail.com"
            )
        if not token:
            raise _answer(NoCredentials("missing"))
        user = await self.decode_jwt_async(token)
        allowlist = self.allowlist
        if allowlist is not None and allowlist.enabled and not allowlist.allows(user.email):
            raise _answer(NotAllowlisted(user.uid, user.email))
        return user

    async def get_current_user(self, token: str | None = Security(oauth2_scheme)) -> KeycloakUser:
        """A FastAPI dependency bound to this object (no GCU check: see README)."""
        return await self.current_user(token)


# ---- Fred's module-level API ---------------------------------------------------------------------

_default: FredSecurity | None = None
_APP_STATE_KEY = "fred_security"


def initialize_user_security(
    config: _UserSecurityLike,
    *,
    app: Any = None,
    settings: FredSettings | None = None,
    allowlist: EmailAllowlist | str | os.PathLike[str] | bool | None = None,
    roles_client: str | None = None,
    exchange: ExchangeSetting | None = None,
) -> FredSecurity:
    """Configure authentication from Fred's `UserSecurity` (`enabled`, `realm_url`,
    `client_id`), reading the `FRED_*` variables now. Sets the process-wide settings; with
    `app`, also that app's (kept in `app.state`, and preferred by `get_current_user`).
    `exchange=(client, audience)`: forwarding with token exchange (see `FredSecurity`)."""
    global _default
    security = FredSecurity(
        str(config.realm_url),
        config.client_id,
        enabled=config.enabled,
        settings=settings,
        allowlist=allowlist,
        roles_client=roles_client,
        exchange=exchange,
    )
    security.log_initialized()
    _default = security
    if app is not None:
        setattr(app.state, _APP_STATE_KEY, security)
    return security


def _configured() -> FredSecurity:
    if _default is None:
        raise HTTPException(status_code=500, detail="Authentication is not configured")
    return _default


def _for_request(request: Request) -> FredSecurity:
    security = getattr(request.app.state, _APP_STATE_KEY, None)
    if isinstance(security, FredSecurity):
        return security
    return _configured()


def get_keycloak_url() -> str:
    """The realm URL given to `initialize_user_security`, or "" (with a warning) before it."""
    if _default is None:
        logger.warning("[AUTH] Keycloak URL requested but not initialized.")
        return ""
    return _default.realm_url


def get_keycloak_client_id() -> str:
    """The client id given to `initialize_user_security`, or "" (with a warning) before it."""
    if _default is None:
        logger.warning("[AUTH] Keycloak Client ID requested but not initialized.")
        return ""
    return _default.client_id


def decode_jwt(token: str) -> KeycloakUser:
    """The user of `token` under the process-wide settings, or `HTTPException(401)`."""
    if _default is None:
        # Fred answers a mock admin before initialisation; refusing is the safe reading.
        raise ConfigError("call initialize_user_security first", setting="realm_url")
    return _default.decode_jwt(token)


async def get_current_user_without_gcu(
    token: str | None = Security(oauth2_scheme),
) -> KeycloakUser:
    """The authenticated user under the process-wide settings: 401 without a token or with a
    rejected one, 403 `user_not_whitelisted` when the whitelist is on and lacks the email."""
    return await _configured().current_user(token)


async def get_current_user(
    request: Request, token: str | None = Security(oauth2_scheme)
) -> KeycloakUser:
    """`Depends(get_current_user)`: the user, under the settings of the request's app when
    `initialize_user_security(..., app=app)` gave it some, else the process-wide ones. Fred's
    GCU (terms of use) check is not done: Fred's user store is Fred's."""
    return await _for_request(request).current_user(token)
