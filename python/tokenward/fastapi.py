"""FastAPI integration: bearer-token dependencies, the `User` model and RFC 6750 errors.

    from fastapi import Depends, FastAPI
    from tokenward.fastapi import Authenticator, User

    auth = Authenticator(exempt_paths={"/health"})          # Verifier.from_env() on first use
    app = FastAPI(dependencies=[Depends(auth.app_dependency)])

    @app.get("/me")
    async def me(user: User = Depends(auth.user)) -> dict[str, str]:
        return {"uid": user.uid}

Streams that end with their token: `ExpiringEventStream` (SSE) and `expiring_websocket`; see
`tokenward._streams` and docs/streams.md.

Warm start and readiness probes: `warm_lifespan(auth)` as the app's `lifespan`, and
`readiness_router(auth)` (GET /ready: 503 until the key set is held); see `tokenward._readiness`.

Module-level dependencies (`get_claims`, `get_current_user`, `require_auth`,
`forwarded_bearer`) use a default `Authenticator`, made from the environment on first use or
set with `configure(...)`.

Answers: 401 with `WWW-Authenticate: Bearer` when no bearer token is sent (no `error`
attribute, RFC 6750 section 3.1); 401 with `WWW-Authenticate: Bearer error="invalid_token",
error_description="..."` when the token is rejected; 403 for an authenticated user who is not
allowed (allowlist: detail `user_not_whitelisted`; RBAC: see `tokenward.rbac`); 503 with
`Retry-After` when no signing keys can be had; 400 (`invalid_request`) for more than one
`Authorization` header. Verification awaits `Verifier.verify_async`,
so the event loop is never blocked, not even while the JWKS is fetched.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from fastapi import HTTPException, WebSocketException
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from ._backchannel import backchannel_logout_route
from ._bearer import (
    REFUSED,
    TOKENWARD_TEXTS,
    WS_POLICY_VIOLATION,
    Identity,
    Lazy,
    NotAllowlisted,
    NotConfigured,
    Refusable,
    Refusal,
    RefusalTexts,
    authorization_header,
    bearer_token,
    is_exempt,
    parse_authorization,
    recalled_identity,
    refusal,
    remember_identity,
    request_path,
    route_path,
    unauthorized,
    unavailable,
)
from ._native import _LogThrottle
from ._readiness import health_of, readiness_endpoint, readiness_router, warm_lifespan
from ._sse import ServerEvent
from ._streams import (
    TOKEN_EXPIRED_EVENT,
    WS_TOKEN_EXPIRED,
    ExpiringEventStream,
    Proven,
    Recheck,
    TokenWatch,
    expiring_websocket,
)
from .allowlist import EmailAllowlist
from .errors import TokenRequestError, TokenwardError
from .forwarding import Exchange, ForwardedBearer
from .verifier import Verifier

__all__ = [
    "ROLE_CLIENTS_ENV",
    "TOKEN_EXPIRED_EVENT",
    "WS_TOKEN_EXPIRED",
    "Authenticator",
    "BearerDependency",
    "ExpiringEventStream",
    "Identity",
    "Proven",
    "Recheck",
    "ServerEvent",
    "TokenWatch",
    "User",
    "authorization_header",
    "backchannel_logout_route",
    "configure",
    "default_authenticator",
    "expiring_websocket",
    "forwarded_bearer",
    "get_claims",
    "get_current_user",
    "health_of",
    "parse_authorization",
    "readiness_endpoint",
    "readiness_router",
    "request_path",
    "require_auth",
    "route_path",
    "warm_lifespan",
]

logger = logging.getLogger("tokenward.fastapi")

#: Comma list of client ids whose `resource_access.<client>.roles` join a user's roles.
ROLE_CLIENTS_ENV = "TOKENWARD_ROLE_CLIENTS"

#: The `error_description` sent for each `InvalidToken.code` (the table of `tokenward._bearer`).
ERROR_DESCRIPTIONS: Mapping[str, str] = TOKENWARD_TEXTS.invalid_token

#: The detail of the 403 for a user who is not on the email allowlist (Fred's UI keys on it).
NOT_ALLOWLISTED = TOKENWARD_TEXTS.not_allowlisted

# ---- the user ----------------------------------------------------------------------------------


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, init=False, eq=False)
class User:
    """The authenticated caller, from a verified access token.

    `roles` are `realm_access.roles` followed by `resource_access.<client>.roles` of the
    configured clients, without duplicates.

    Safe to return from a route: the dataclass fields are the six public ones, so FastAPI's
    (pydantic's) response, `dataclasses.asdict`, `dataclasses.fields` and `repr()` show only
    them. The raw bearer token and the raw claims are kept in private slots and given out only
    on explicit access (`user.token`, `user.claims`, `user.bearer`); `vars(user)` has nothing
    to show (there is no `__dict__`). Equality and hash cover the six fields and the token."""

    # Slots, not dataclass fields, for the two secrets: nothing that walks fields, __dict__ or
    # the constructor's signature can find them.
    __slots__ = ("_claims", "_token", "azp", "email", "groups", "roles", "uid", "username")

    uid: str
    username: str | None
    email: str | None
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    azp: str | None
    if TYPE_CHECKING:
        # Declared for the type checker only: annotated at run time, they would be fields.
        _claims: Mapping[str, Any]
        _token: str

    def __init__(
        self,
        uid: str,
        username: str | None,
        email: str | None,
        roles: tuple[str, ...],
        groups: tuple[str, ...],
        azp: str | None,
        claims: Mapping[str, Any],
        token: str,
    ) -> None:
        # object.__setattr__: the frozen dataclass's own __setattr__ refuses every write.
        for name, value in (
            ("uid", uid),
            ("username", username),
            ("email", email),
            ("roles", tuple(roles)),
            ("groups", tuple(groups)),
            ("azp", azp),
            ("_claims", claims),
            ("_token", token),
        ):
            object.__setattr__(self, name, value)

    @property
    def claims(self) -> Mapping[str, Any]:
        """The verified claims, as the verifier returned them (explicit access only)."""
        return self._claims

    @property
    def token(self) -> str:
        """The raw bearer token (explicit access only; never serialised or shown)."""
        return self._token

    def _key(self) -> tuple[object, ...]:
        return (self.uid, self.username, self.email, self.roles, self.groups, self.azp, self._token)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, User):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and copy through the constructor: the slots are private, and frozen.
        return (type(self), (*self._key()[:6], self._claims, self._token))

    @classmethod
    def from_claims(
        cls,
        claims: Mapping[str, Any],
        token: str,
        role_clients: Iterable[str] = (),
        *,
        realm_roles: bool = True,
    ) -> User:
        """The user of verified `claims`. `role_clients`: the clients whose roles count;
        `realm_roles=False` leaves the realm roles out (only client roles count)."""
        roles: list[str] = []
        realm_access = claims.get("realm_access") if realm_roles else None
        if isinstance(realm_access, Mapping):
            roles.extend(_strings(realm_access.get("roles")))
        resource_access = claims.get("resource_access")
        if isinstance(resource_access, Mapping):
            for client in role_clients:
                access = resource_access.get(client)
                if isinstance(access, Mapping):
                    roles.extend(_strings(access.get("roles")))
        sub = claims.get("sub")
        return cls(
            uid=sub if isinstance(sub, str) else "",
            username=_str_or_none(claims.get("preferred_username")),
            email=_str_or_none(claims.get("email")),
            roles=tuple(dict.fromkeys(roles)),
            groups=_strings(claims.get("groups")),
            azp=_str_or_none(claims.get("azp")),
            claims=claims,
            token=token,
        )

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def bearer(self) -> ForwardedBearer:
        """`auth=` for requests/httpx calls made on this user's behalf."""
        return ForwardedBearer(self.token)


# ---- dependencies that are their own security scheme -------------------------------------------


class BearerDependency(HTTPBearer):
    """A FastAPI dependency that is itself the OpenAPI HTTP bearer scheme, so `/docs` shows the
    padlock. Being the scheme, rather than taking a `Security(HTTPBearer())` parameter, leaves
    FastAPI one dependency to resolve per use instead of two: about 10 µs a request.

    It takes an `HTTPConnection` (what FastAPI hands an HTTP request and a WebSocket alike), so
    it serves WebSocket routes too, including through `FastAPI(dependencies=[...])`."""

    def __init__(
        self,
        resolve: Callable[[HTTPConnection], Awaitable[Any]],
        doc: str,
        scheme_name: str = "bearer",
    ) -> None:
        super().__init__(
            auto_error=False,
            scheme_name=scheme_name,
            bearerFormat="JWT",
            description="An OIDC access token (JWT) from the realm.",
        )
        self._resolve = resolve
        self.__doc__ = doc

    async def __call__(self, request: HTTPConnection) -> Any:
        return await self._resolve(request)


_CLAIMS_DOC = "The verified claims of the request's bearer token"
_USER_DOC = "The `User` of the request's bearer token"
_APP_WIDE_DOC = "For `FastAPI(dependencies=[...])`: the claims, or None on an exempt path"
_FORWARDED_DOC = "`auth=` for outgoing calls, carrying the request's (verified) bearer token"


# ---- the authenticator -------------------------------------------------------------------------

VerifierSource = Verifier | Callable[[], Verifier]


class Authenticator:
    """Verifies the request's bearer token and turns it into claims or a `User`.

    verifier: a `Verifier`, or a callable returning one; None builds one on first use, with
        `Verifier(**verifier_settings)` when the settings name an `issuer`, else
        `Verifier.from_env(**verifier_settings)`. Made once, lazily, thread-safely.
    role_clients: client ids whose `resource_access.<client>.roles` are added to the realm
        roles; None reads `$TOKENWARD_ROLE_CLIENTS` (comma list).
    realm_roles: whether `realm_access.roles` count (False: only the client roles do).
    exempt_paths: paths for which `app_dependency` and `BearerAuthMiddleware` let a request
        through without a token: an exact match on the path the app routes, below any
        `root_path` or `Mount` prefix (`tokenward._bearer.is_exempt`), so `{"/health"}` serves
        `/health` behind any ingress prefix. Per-route `claims`/`user` always require a token.
    allowlist: an `EmailAllowlist`, or a path to one; None reads `$TOKENWARD_ALLOWLIST_FILE`;
        False turns it off.
    require_verified_email: the allowlist (made from a path or the environment) passes only a
        token with `"email_verified": true`; None (the default) reads
        `$TOKENWARD_ALLOWLIST_REQUIRE_VERIFIED` for an allowlist from the environment and is
        false otherwise. Pass it on the `EmailAllowlist` itself when you give one.
    retry_after: seconds sent in `Retry-After` with the 503 when no keys can be had.
    realm: an optional `realm` attribute for the `WWW-Authenticate` challenges.
    texts: what the refusals say (tokenward's own by default; `tokenward.smartem` passes
        SmartEM's). logger: where refusals are logged (default `tokenward.fastapi`).
    """

    def __init__(
        self,
        verifier: VerifierSource | None = None,
        *,
        verifier_settings: Mapping[str, Any] | None = None,
        role_clients: Iterable[str] | None = None,
        realm_roles: bool = True,
        exempt_paths: Iterable[str] = (),
        allowlist: EmailAllowlist | str | os.PathLike[str] | bool | None = None,
        require_verified_email: bool | None = None,
        retry_after: int = 30,
        realm: str | None = None,
        scheme_name: str = "bearer",
        texts: RefusalTexts = TOKENWARD_TEXTS,
        logger: logging.Logger = logger,
    ) -> None:
        if verifier is not None and verifier_settings:
            raise TypeError("pass either a verifier or verifier_settings, not both")
        self._verifier: Verifier | None = None
        self._factory: Callable[[], Verifier] | None = None
        # Anything with `verify_async` is a verifier (tests wrap one); a class is a factory.
        if not isinstance(verifier, type) and hasattr(verifier, "verify_async"):
            self._verifier = cast(Verifier, verifier)
        elif callable(verifier):
            self._factory = verifier
        elif verifier is not None:
            raise TypeError("verifier must be a Verifier or a callable returning one")
        self._settings = dict(verifier_settings or {})
        self._verifier_once = Lazy(self, "_verifier", self._make_verifier)
        if role_clients is None:
            raw = os.environ.get(ROLE_CLIENTS_ENV, "")
            role_clients = [c.strip() for c in raw.split(",") if c.strip()]
        self.role_clients: tuple[str, ...] = tuple(role_clients)
        self.realm_roles = bool(realm_roles)
        self.exempt_paths: frozenset[str] = frozenset(exempt_paths)
        if allowlist is None:
            self.allowlist: EmailAllowlist | None = EmailAllowlist.from_env(
                require_verified_email=require_verified_email
            )
        elif allowlist is False:
            self.allowlist = None
        elif allowlist is True:
            raise TypeError("allowlist=True is ambiguous: pass a path or an EmailAllowlist")
        elif isinstance(allowlist, EmailAllowlist):
            if require_verified_email is not None:
                # Two places for one setting would let them disagree silently.
                raise TypeError("set require_verified_email on the EmailAllowlist you pass")
            self.allowlist = allowlist
        else:
            self.allowlist = EmailAllowlist(
                allowlist, require_verified_email=bool(require_verified_email)
            )
        if int(retry_after) < 0:
            raise ValueError("retry_after must not be negative")
        self.retry_after = int(retry_after)
        self.realm = realm
        self.texts = texts
        self.logger = logger
        self._outage_log = _LogThrottle()
        self.claims, self.user, self.app_dependency, self.forwarded = self._dependencies(
            scheme_name
        )

    # ---- the verifier ----------------------------------------------------------------------

    @property
    def verifier(self) -> Verifier:
        """The verifier, made on first use."""
        return self._verifier_once.get()

    def _make_verifier(self) -> Verifier:
        if self._factory is not None:
            verifier = self._factory()
        elif "issuer" in self._settings:
            settings = dict(self._settings)
            verifier = Verifier(settings.pop("issuer"), **settings)
        else:
            verifier = Verifier.from_env(**self._settings)
        self.logger.info("tokenward verifier ready for issuer %s", verifier.issuer)
        return verifier

    def _configured_verifier(self) -> Verifier:
        try:
            return self._verifier_once.get()
        except TokenwardError as exc:
            raise NotConfigured(exc) from exc

    async def readiness(self) -> JSONResponse:
        """A readiness endpoint (`app.get("/ready")(auth.readiness)`): 200 with the verifier's
        `health()` once its key set is held, else 503 with it. No I/O; exempt its path."""
        return await readiness_endpoint(self)()

    # ---- the core --------------------------------------------------------------------------

    async def identify(self, header: str | None) -> Identity:
        """The verified identity of an `Authorization` header value.

        Raises one of `tokenward._bearer.REFUSED` (no or an empty token, `InvalidToken`,
        `KeySetUnavailable`, a user not on the allowlist, no configuration), for `refusal`."""
        token = bearer_token(header)
        verifier = self._verifier
        if verifier is None:
            verifier = self._configured_verifier()
        claims = await verifier.verify_async(token)
        if self.allowlist is not None and not self.allowlist.permits(claims):
            raise NotAllowlisted(claims.get("sub"), claims.get("email"))
        return Identity(claims, token)

    def refusal(self, exc: Refusable) -> Refusal:
        """The status, detail and headers refusing a request with `exc` (from `identify`), in
        this authenticator's texts, realm and `Retry-After`; logged."""
        return refusal(
            exc,
            self.texts,
            realm=self.realm,
            retry_after=self.retry_after,
            logger=self.logger,
            outage_log=self._outage_log,
        )

    def _http_exception(self, exc: Refusable) -> HTTPException:
        return HTTPException(*self.refusal(exc))

    def _refuse(
        self, connection: HTTPConnection, exc: Refusable
    ) -> HTTPException | WebSocketException:
        """The exception refusing `connection`: the HTTP answer of `refusal`, or for a WebSocket
        handshake a close with 1008 (policy violation) before it is accepted, which the server
        answers with HTTP 403, as `BearerAuthMiddleware` does. Logged either way."""
        answer = self.refusal(exc)
        if connection.scope["type"] == "websocket":
            return WebSocketException(WS_POLICY_VIOLATION)
        return HTTPException(*answer)

    def unauthorized(
        self, error: str | None = None, description: str | None = None
    ) -> HTTPException:
        """A 401 with the RFC 6750 challenge (no `error` when no credentials were sent)."""
        detail = description or self.texts.no_credentials
        return HTTPException(*unauthorized(detail, self.realm, error, description))

    def unavailable(self) -> HTTPException:
        return HTTPException(*unavailable(self.texts.keys_unavailable, self.retry_after))

    async def authenticate(self, request: HTTPConnection) -> Identity:
        """The verified identity (claims and raw token) of this request or WebSocket handshake,
        or an HTTPException (a WebSocketException for a handshake).

        The result is kept in the request's state, so several dependencies of one request (and
        `BearerAuthMiddleware` before them) verify once."""
        scope = request.scope
        identity = recalled_identity(scope, self)
        if identity is None:
            try:
                identity = await self.identify(authorization_header(scope))
            except REFUSED as exc:
                # The cause is kept only where there is one worth keeping (no configuration).
                raise self._refuse(request, exc) from exc.__cause__
            remember_identity(scope, self, identity)
        return identity

    async def verify_authorization(self, header: str | None) -> Identity:
        """The verified identity of an `Authorization` header value, or an HTTPException: 401,
        403 (allowlist), 503 (no signing keys) or 500 (not configured)."""
        try:
            return await self.identify(header)
        except REFUSED as exc:
            raise self._http_exception(exc) from exc.__cause__

    async def unshared_app_wide(self, connection: HTTPConnection) -> dict[str, Any] | None:
        """`app_wide` without keeping the identity in the request's state: for a dependency
        that FastAPI resolves once per request anyway (SmartEM's `verify_token`)."""
        scope = connection.scope
        if is_exempt(scope, self.exempt_paths):
            return None
        # `identify` without the Identity it would make and drop: the same steps, inline, so
        # this path costs no more than the drop-in it replaced.
        try:
            token = bearer_token(authorization_header(scope))
            verifier = self._verifier
            if verifier is None:
                verifier = self._configured_verifier()
            claims = await verifier.verify_async(token)
            if self.allowlist is not None and not self.allowlist.permits(claims):
                raise NotAllowlisted(claims.get("sub"), claims.get("email"))
        except REFUSED as exc:
            raise self._refuse(connection, exc) from exc.__cause__
        return claims

    def make_user(self, claims: Mapping[str, Any], token: str) -> User:
        return User.from_claims(claims, token, self.role_clients, realm_roles=self.realm_roles)

    # ---- dependencies ----------------------------------------------------------------------

    async def claims_of(self, request: HTTPConnection) -> dict[str, Any]:
        return (await self.authenticate(request)).claims

    async def user_of(self, request: HTTPConnection) -> User:
        identity = await self.authenticate(request)
        return self.make_user(identity.claims, identity.token)

    async def app_wide(self, request: HTTPConnection) -> dict[str, Any] | None:
        if is_exempt(request.scope, self.exempt_paths):
            return None
        return (await self.authenticate(request)).claims

    async def forwarded_of(self, request: HTTPConnection) -> ForwardedBearer:
        return ForwardedBearer((await self.authenticate(request)).token)

    def forwarding(
        self, *, exchange: Exchange | None = None, scheme_name: str = "bearer"
    ) -> BearerDependency:
        """A dependency like `forwarded`; with `exchange=(token_client, audience)` it carries
        the request's token exchanged for `audience` (`ForwardedBearer.exchanged`) instead.
        A refused exchange is a 502: the downstream call cannot be made on this caller's
        behalf (the IdP's code is logged)."""
        if exchange is None:
            return self.forwarded

        async def resolve(request: HTTPConnection) -> ForwardedBearer:
            token = (await self.authenticate(request)).token
            try:
                return await ForwardedBearer.exchanged(token, exchange=exchange)
            except TokenRequestError as exc:
                self.logger.warning("token exchange for forwarding failed: %s", exc.error)
                raise HTTPException(502, "token exchange failed") from exc

        return BearerDependency(resolve, _FORWARDED_DOC + " (exchanged)", scheme_name)

    def _dependencies(
        self, scheme_name: str
    ) -> tuple[BearerDependency, BearerDependency, BearerDependency, BearerDependency]:
        return (
            BearerDependency(self.claims_of, _CLAIMS_DOC, scheme_name),
            BearerDependency(self.user_of, _USER_DOC, scheme_name),
            BearerDependency(self.app_wide, _APP_WIDE_DOC, scheme_name),
            BearerDependency(self.forwarded_of, _FORWARDED_DOC, scheme_name),
        )


# ---- the default authenticator and module-level dependencies ------------------------------------

#: The default authenticator, made from the environment on first use unless `configure` set one.
_default: Authenticator | None = None
_default_once: Lazy[Authenticator] = Lazy(sys.modules[__name__], "_default", Authenticator)


def configure(verifier: VerifierSource | None = None, **options: Any) -> Authenticator:
    """Set the default authenticator used by the module-level dependencies; takes the
    arguments of `Authenticator`. Returns it."""
    authenticator = Authenticator(verifier, **options)
    _default_once.set(authenticator)
    return authenticator


def default_authenticator() -> Authenticator:
    """The default authenticator (from the environment unless `configure` set one)."""
    return _default or _default_once.get()


# Each resolves the default authenticator per request, so `configure(...)` after import counts.
get_claims = BearerDependency(
    lambda request: default_authenticator().claims_of(request),
    _CLAIMS_DOC + " (default authenticator)",
)
get_current_user = BearerDependency(
    lambda request: default_authenticator().user_of(request),
    _USER_DOC + " (default authenticator)",
)
require_auth = BearerDependency(
    lambda request: default_authenticator().app_wide(request),
    _APP_WIDE_DOC + " (default authenticator)",
)
forwarded_bearer = BearerDependency(
    lambda request: default_authenticator().forwarded_of(request),
    _FORWARDED_DOC + " (default authenticator)",
)
