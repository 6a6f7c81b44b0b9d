"""Client registration for the DevIdP, as Keycloak serves it, with its two JSON providers:

    POST   {issuer}/clients-registrations/{provider}               initial access token
    GET    {issuer}/clients-registrations/{provider}/{client_id}   registration access token
    PUT    {issuer}/clients-registrations/{provider}/{client_id}   registration access token
    DELETE {issuer}/clients-registrations/{provider}/{client_id}   registration access token

- `default`: Keycloak's ClientRepresentation (`clientId`, `name`, `clientAuthenticatorType`
  `client-jwt` for private_key_jwt, `serviceAccountsEnabled`, the attributes `jwks.string` and
  `use.jwks.string`); the answer carries `registrationAccessToken`. The client id is the one
  asked for, which is how an agent gets the name `SmartEM_Agent_<host>`.
- `openid-connect`: OIDC Dynamic Client Registration metadata (`client_name`,
  `token_endpoint_auth_method`, `jwks` or `jwks_uri`, `grant_types`, default
  `authorization_code`); the answer carries `registration_access_token` and
  `registration_client_uri`. As Keycloak 26 does, it refuses a `client_id` in the request
  ("Client Identifier included") and makes a UUID.

An initial access token (made by `DevIdP.create_initial_access_token(expiration=, count=)`, as
an operator makes one with `POST /admin/realms/{realm}/clients-initial-access`) allows `count`
registrations until it expires. A GET answers the registration access token still in force; a
PUT (an update: new keys) answers a new one and the old one stops working at once, as measured
against Keycloak 26.7. Tokens are opaque random strings, never in a log line or a repr.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

from ._server import Request, Response

logger = logging.getLogger("tokenward.testing")

#: Where the providers live, below the issuer.
REGISTRATION_PATH = "/clients-registrations"
PROVIDERS: tuple[str, ...] = ("default", "openid-connect")
KEY_AUTH_METHODS = ("private_key_jwt",)
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt")


class ClientStore(Protocol):
    """What registration needs of the DevIdP (`DevIdP` implements it)."""

    def add_client(
        self,
        client_id: str,
        secret: str | None = None,
        *,
        name: str | None = None,
        jwks: Any = None,
        jwks_uri: str | None = None,
        service_account: bool = True,
    ) -> None: ...

    def set_client_keys(
        self, client_id: str, jwks: Any = None, jwks_uri: str | None = None
    ) -> None: ...

    def has_client(self, client_id: str) -> bool: ...

    def remove_client(self, client_id: str) -> None: ...


class RegistrationError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.response = Response.json(status, {"error": error, "error_description": description})


def _invalid_metadata(description: str) -> RegistrationError:
    return RegistrationError(400, "invalid_client_metadata", description)


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


@dataclass(frozen=True)
class Settings:
    """What a registration asks of the client, whichever provider it came through."""

    client_id: str | None
    name: str | None
    key_auth: bool
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    service_account: bool


@dataclass
class _InitialAccess:
    expires_at: float | None
    remaining: int


@dataclass
class _Registered:
    provider: str
    document: dict[str, Any]
    token: str = field(repr=False)


class ClientRegistration:
    """The registration endpoints of one realm, and its initial access tokens."""

    def __init__(self, store: ClientStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._creating = threading.Lock()
        self._initial: dict[str, _InitialAccess] = {}
        self._registered: dict[str, _Registered] = {}
        self.registrations = 0
        """Registrations answered 201."""

    def create_initial_access_token(self, expiration: int = 0, count: int = 1) -> str:
        """A token allowing `count` registrations for `expiration` seconds (0: no expiry)."""
        if expiration < 0 or count < 1:
            raise ValueError("expiration must be >= 0 and count >= 1")
        token = secrets.token_urlsafe(32)
        expires_at = time.time() + expiration if expiration else None
        with self._lock:
            self._initial[_digest(token)] = _InitialAccess(expires_at, count)
        return token

    def forget(self, client_id: str) -> None:
        """The client is gone (deleted through the Admin API): its registration token too."""
        with self._lock:
            self._registered.pop(client_id, None)

    def handle(self, request: Request, rest: str, issuer: str) -> Response:
        """Answer `request`, whose path below `{issuer}/clients-registrations` is `rest`."""
        provider, _, client_id = rest.strip("/").partition("/")
        client_id = unquote(client_id)
        if provider not in PROVIDERS:
            return Response.json(404, {"error": "Unable to find matching target resource method"})
        try:
            if not client_id:
                if request.method != "POST":
                    return Response.json(405, {"error": "HTTP method not allowed"})
                return self._register(request, provider, issuer)
            if request.method not in ("GET", "PUT", "DELETE"):
                return Response.json(405, {"error": "HTTP method not allowed"})
            entry = self._authorized(request, client_id, provider)
            if request.method == "DELETE":
                self._store.remove_client(client_id)
                self.forget(client_id)
                return Response(204, b"")
            if request.method == "GET":
                return Response.json(200, _answer(provider, client_id, entry, issuer))
            return self._update(request, provider, client_id, issuer)
        except RegistrationError as exc:
            logger.info("DevIdP registration refused: %s", exc)
            return exc.response

    def _authorized(self, request: Request, client_id: str, provider: str) -> _Registered:
        token = _bearer(request)
        with self._lock:
            entry = self._registered.get(client_id)
        if (
            entry is None
            or token is None
            or entry.provider != provider
            or not hmac.compare_digest(entry.token.encode(), token.encode())
        ):
            raise RegistrationError(401, "invalid_token", "Not authorized to view client")
        return entry

    def _initial_access(self, token: str | None, spend: bool) -> None:
        if token is None:
            # Keycloak's anonymous registration; the DevIdP has no trusted hosts for it.
            raise RegistrationError(401, "invalid_token", "Initial access token required")
        with self._lock:
            access = self._initial.get(_digest(token))
            if access is None:
                raise RegistrationError(401, "invalid_token", "Failed decode token")
            if access.expires_at is not None and time.time() >= access.expires_at:
                raise RegistrationError(401, "invalid_token", "Failed decode token")  # as Keycloak
            if access.remaining < 1:
                raise RegistrationError(
                    401, "invalid_token", "No remaining count on initial access token"
                )
            if spend:
                access.remaining -= 1

    def _register(self, request: Request, provider: str, issuer: str) -> Response:
        token = _bearer(request)
        self._initial_access(token, spend=False)
        document = _body(request)
        settings = _settings(provider, document, creating=True)
        client_id = settings.client_id or str(uuid.uuid4())
        secret = secrets.token_urlsafe(24) if not settings.key_auth else None
        with self._creating:  # one check-then-create at a time: no duplicate client id
            if self._store.has_client(client_id):
                raise _invalid_metadata("Client Identifier in use")
            self._initial_access(token, spend=True)
            self._store.add_client(
                client_id,
                secret,
                name=settings.name,
                jwks=settings.jwks,
                jwks_uri=settings.jwks_uri,
                service_account=settings.service_account,
            )
        entry = _Registered(provider, _stored(provider, document, client_id), _new_token())
        with self._lock:
            self._registered[client_id] = entry
            self.registrations += 1
        logger.info("DevIdP: client %s registered (%s)", client_id, provider)
        answer = _answer(provider, client_id, entry, issuer)
        if secret is not None:
            answer["secret" if provider == "default" else "client_secret"] = secret
        return Response.json(201, answer)

    def _update(self, request: Request, provider: str, client_id: str, issuer: str) -> Response:
        document = _body(request)
        settings = _settings(provider, document, creating=False)
        if settings.client_id not in (None, client_id):
            raise _invalid_metadata("Client Identifier modified")
        if not self._store.has_client(client_id):
            self.forget(client_id)
            raise RegistrationError(401, "invalid_token", "Not authorized to view client")
        if settings.jwks is not None or settings.jwks_uri is not None:
            self._store.set_client_keys(client_id, settings.jwks, settings.jwks_uri)
        fresh = _Registered(provider, _stored(provider, document, client_id), _new_token())
        with self._lock:
            self._registered[client_id] = fresh  # the old token stops working here
        logger.info("DevIdP: client %s updated through registration", client_id)
        return Response.json(200, _answer(provider, client_id, fresh, issuer))


def _digest(token: str) -> str:
    """Initial access tokens are kept by digest: the DevIdP's state never holds one."""
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def _body(request: Request) -> dict[str, Any]:
    try:
        document = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise _invalid_metadata("the body is not JSON") from exc
    if not isinstance(document, dict):
        raise _invalid_metadata("the body must be a JSON object")
    return document


def _jwk_set(value: Any, what: str) -> dict[str, Any]:
    if not (isinstance(value, dict) and isinstance(value.get("keys"), list)):
        raise _invalid_metadata(f"{what} must be a JWK Set")
    return value


def _settings(provider: str, document: Mapping[str, Any], creating: bool) -> Settings:
    if provider == "default":
        return _representation_settings(document)
    if creating and "client_id" in document:
        raise _invalid_metadata("Client Identifier included")
    return _metadata_settings(document)


def _representation_settings(rep: Mapping[str, Any]) -> Settings:
    client_id = rep.get("clientId")
    if client_id is not None and (not isinstance(client_id, str) or not client_id):
        raise _invalid_metadata("clientId must be a non-empty string")
    attributes = rep.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise _invalid_metadata("attributes must be an object")
    jwks = None
    if attributes.get("use.jwks.string") == "true" or "jwks.string" in attributes:
        try:
            jwks = _jwk_set(json.loads(attributes.get("jwks.string", "")), "jwks.string")
        except ValueError as exc:
            raise _invalid_metadata("jwks.string must be a JSON JWK Set") from exc
    key_auth = rep.get("clientAuthenticatorType") == "client-jwt"
    name = rep.get("name")
    return Settings(
        client_id=client_id,
        name=name if isinstance(name, str) else None,
        key_auth=key_auth,
        jwks=jwks,
        jwks_uri=None,
        service_account=bool(rep.get("serviceAccountsEnabled", False)),
    )


def _metadata_settings(document: Mapping[str, Any]) -> Settings:
    method = document.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in (*KEY_AUTH_METHODS, *SECRET_AUTH_METHODS, "none"):
        raise _invalid_metadata(f"unsupported token_endpoint_auth_method {method!r}")
    jwks, jwks_uri = document.get("jwks"), document.get("jwks_uri")
    if jwks is not None and jwks_uri is not None:
        raise _invalid_metadata("jwks and jwks_uri are mutually exclusive")
    if method in KEY_AUTH_METHODS and jwks is None and jwks_uri is None:
        raise _invalid_metadata("private_key_jwt needs jwks or jwks_uri")
    grants = document.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
        raise _invalid_metadata("grant_types must be a list of strings")
    name = document.get("client_name")
    return Settings(
        client_id=document.get("client_id"),
        name=name if isinstance(name, str) else None,
        key_auth=method in KEY_AUTH_METHODS,
        jwks=_jwk_set(jwks, "jwks") if jwks is not None else None,
        jwks_uri=jwks_uri if isinstance(jwks_uri, str) else None,
        service_account="client_credentials" in grants,
    )


_TOKEN_FIELDS = ("registrationAccessToken", "registration_access_token", "registration_client_uri")


def _stored(provider: str, document: Mapping[str, Any], client_id: str) -> dict[str, Any]:
    kept = {k: v for k, v in document.items() if k not in (*_TOKEN_FIELDS, "secret")}
    kept["clientId" if provider == "default" else "client_id"] = client_id
    return kept


def _answer(provider: str, client_id: str, entry: _Registered, issuer: str) -> dict[str, Any]:
    if provider == "default":
        return {"enabled": True, **entry.document, "registrationAccessToken": entry.token}
    return {
        **entry.document,
        "client_id_issued_at": int(time.time()),
        "client_secret_expires_at": 0,
        "registration_client_uri": f"{issuer}{REGISTRATION_PATH}/{provider}/{client_id}",
        "registration_access_token": entry.token,
    }
