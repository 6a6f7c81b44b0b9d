"""The DevIdP's realm: clients, users, client authentication and the token endpoint's grants.

Client authentication is a table of methods (`ClientAuthenticator.methods`). The secret-based
ones are built in. JWT-assertion methods (`private_key_jwt`, `client_secret_jwt`) go through one
hook, `DevIdP.client_assertion_verifier` (a `ClientAssertionVerifier`): the DevIdP parses the
request and hands the assertion over; the hook verifies it and names the client. Without a hook
an assertion is refused with `invalid_client`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote_plus

from ._groups import GROUPS_CLAIM_STYLES, Group, find_group, make_group
from ._server import Request, Response

logger = logging.getLogger("tokenward.testing")

CLIENT_ASSERTION_TYPE_JWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Client authentication methods that are always available.
SECRET_AUTH_METHODS: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
#: The grants the token endpoint serves.
GRANT_TYPES: tuple[str, ...] = (
    "client_credentials",
    "password",
    "urn:ietf:params:oauth:grant-type:token-exchange",
)
#: Form parameters that may be repeated (RFC 8693: `audience`); the form keeps the first.
REPEATABLE: tuple[str, ...] = ("audience",)

#: Lifetime of the refresh tokens of the password grant (Keycloak's SSO session idle default).
REFRESH_LIFETIME = 1800


class OAuthError(Exception):
    """An OAuth error answer of the token endpoint (RFC 6749 section 5.2)."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.headers = dict(headers or {})

    def response(self) -> Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache", **self.headers}
        document = {"error": self.error, "error_description": self.description}
        return Response.json(self.status, document, headers)


def _invalid_client(basic: bool = False) -> OAuthError:
    headers = {"WWW-Authenticate": 'Basic realm="DevIdP"'} if basic else None
    return OAuthError(
        401, "invalid_client", "Invalid client or Invalid client credentials", headers
    )


def _frozen_roles(roles: Mapping[str, Sequence[str]] | None) -> Mapping[str, tuple[str, ...]]:
    for cid, names in (roles or {}).items():
        if isinstance(names, str):
            raise TypeError(f"the roles of client {cid!r} must be a sequence, not a string")
    return MappingProxyType({cid: tuple(r) for cid, r in (roles or {}).items()})


def _stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "tokenward-devidp:" + ":".join(parts)))


@dataclass(frozen=True)
class Client:
    """A realm client. `secret=None` makes a public client (no client_credentials grant)."""

    client_id: str
    secret: str | None = field(default=None, repr=False)
    token_lifetime: int = 300
    roles: tuple[str, ...] = ()
    extra_claims: Mapping[str, Any] = field(default_factory=dict)
    #: The `sub` of this client's service-account tokens (stable for a realm and client id).
    service_account_id: str = ""
    #: Public keys are registered for private_key_jwt (see `_client_auth`).
    has_keys: bool = False
    #: Added to the `aud` of every token issued to this client (Keycloak's audience mapper,
    #: "included client audience"), before "account".
    audiences: tuple[str, ...] = ()
    #: How user tokens of this client carry `groups` (see `_groups.GROUPS_CLAIM_STYLES`).
    groups_claim: str | None = None
    #: Client roles of the service account (its tokens' resource_access), e.g.
    #: {"realm-management": ("view-users",)}.
    service_client_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Keycloak's "Standard token exchange" switch (see `_exchange`).
    token_exchange: bool = False
    #: Keycloak's "Service accounts roles" switch: the client_credentials grant.
    service_account: bool = True
    #: A disabled client gets no token (Keycloak's "Enabled" switch; see `Directory.set_enabled`).
    enabled: bool = True
    #: Its display name (Keycloak's `name`, registration's `client_name`).
    name: str | None = None
    #: Keycloak's internal id (the `{id}` of the Admin API's client paths).
    internal_id: str = ""

    @property
    def confidential(self) -> bool:
        return self.secret is not None or self.has_keys

    def secret_matches(self, secret: str | None) -> bool:
        if self.secret is None or secret is None:
            return False
        return hmac.compare_digest(self.secret.encode(), secret.encode())


@dataclass(frozen=True)
class User:
    username: str
    password: str = field(repr=False)
    email: str | None = None
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    client_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    user_id: str = ""
    first_name: str | None = None
    last_name: str | None = None
    #: Milliseconds since the epoch, as Keycloak's createdTimestamp.
    created_ms: int = 0

    def password_matches(self, password: str) -> bool:
        return hmac.compare_digest(self.password.encode(), password.encode())


@dataclass(frozen=True)
class ClientAssertion:
    """A `client_assertion` as received, for a `ClientAssertionVerifier`."""

    assertion_type: str
    assertion: str = field(repr=False)
    #: The form's client_id, when the client sent one.
    client_id: str | None
    #: The audiences the assertion may name: the token endpoint URL and the issuer.
    audiences: tuple[str, ...]
    #: Look up a registered client by id.
    lookup: Callable[[str], Client | None] = field(repr=False)


class ClientAssertionVerifier(Protocol):
    """The hook for `private_key_jwt` / `client_secret_jwt` client authentication.

    `methods` are the auth method names it adds to the discovery document. Calling it verifies
    the assertion (signature, iss == sub == client id, aud, exp, jti) and returns the client,
    or raises `OAuthError` (use 401 `invalid_client`).
    """

    methods: Sequence[str]

    def __call__(self, assertion: ClientAssertion) -> Client: ...


class Directory:
    """The realm's clients and users. Thread-safe."""

    def __init__(self, realm: str) -> None:
        self.realm = realm
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}
        self._users: dict[str, User] = {}
        self._groups: dict[str, Group] = {}

    def add_client(
        self,
        client_id: str,
        secret: str | None = None,
        token_lifetime: int = 300,
        roles: Sequence[str] = (),
        extra_claims: Mapping[str, Any] | None = None,
        has_keys: bool = False,
        audiences: Sequence[str] = (),
        groups_claim: str | None = None,
        service_client_roles: Mapping[str, Sequence[str]] | None = None,
        token_exchange: bool = False,
        name: str | None = None,
        service_account: bool = True,
    ) -> Client:
        if not client_id:
            raise ValueError("client_id must not be empty")
        if groups_claim not in GROUPS_CLAIM_STYLES:
            raise ValueError(f"groups_claim must be one of {GROUPS_CLAIM_STYLES}")
        if isinstance(audiences, str):
            raise TypeError("audiences must be a sequence of client ids, not a string")
        client = Client(
            client_id=client_id,
            secret=secret,
            token_lifetime=int(token_lifetime),
            roles=tuple(roles),
            extra_claims=MappingProxyType(dict(extra_claims or {})),
            service_account_id=_stable_uuid(self.realm, "service-account", client_id),
            internal_id=str(uuid.uuid4()),
            has_keys=has_keys,
            audiences=tuple(audiences),
            groups_claim=groups_claim,
            service_client_roles=_frozen_roles(service_client_roles),
            token_exchange=token_exchange,
            name=name,
            service_account=service_account,
        )
        with self._lock:
            self._clients[client_id] = client
        return client

    def add_user(
        self,
        username: str,
        password: str,
        email: str | None = None,
        roles: Sequence[str] = (),
        groups: Sequence[str] = (),
        client_roles: Mapping[str, Sequence[str]] | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> User:
        if not username:
            raise ValueError("username must not be empty")
        user = User(
            username=username,
            password=password,
            email=email,
            roles=tuple(roles),
            groups=tuple(groups),
            client_roles=_frozen_roles(client_roles),
            user_id=_stable_uuid(self.realm, "user", username),
            first_name=first_name,
            last_name=last_name,
            created_ms=int(time.time() * 1000),
        )
        with self._lock:
            self._users[username.lower()] = user  # Keycloak usernames are case-insensitive
        return user

    def add_group(
        self,
        name: str,
        realm_roles: Sequence[str] = (),
        client_roles: Mapping[str, Sequence[str]] | None = None,
    ) -> Group:
        group = make_group(name, _stable_uuid(self.realm, "group", name), realm_roles, client_roles)
        with self._lock:
            self._groups[name] = group
        return group

    def groups(self) -> dict[str, Group]:
        """The registered groups by name (a copy)."""
        with self._lock:
            return dict(self._groups)

    def users(self) -> list[User]:
        """Every user, in registration order."""
        with self._lock:
            return list(self._users.values())

    def memberships(self, user: User) -> list[Group]:
        """The registered groups `user` is a member of."""
        groups = self.groups()
        found = (find_group(groups, reference) for reference in user.groups)
        return list(dict.fromkeys(g for g in found if g is not None))

    def client(self, client_id: str) -> Client | None:
        with self._lock:
            return self._clients.get(client_id)

    def clients(self) -> list[Client]:
        """Every client, in registration order."""
        with self._lock:
            return list(self._clients.values())

    def update_client(self, client_id: str, **changes: Any) -> Client | None:
        """Replace fields of a registered client (None when there is no such client)."""
        with self._lock:
            client = self._clients.get(client_id)
            if client is None:
                return None
            client = replace(client, **changes)
            self._clients[client_id] = client
            return client

    def remove_client(self, client_id: str) -> bool:
        with self._lock:
            return self._clients.pop(client_id, None) is not None

    def user(self, username: str) -> User | None:
        with self._lock:
            return self._users.get(username.lower())


def parse_form(request: Request) -> dict[str, str]:
    """The form parameters of a token request; a repeated parameter is an error."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError(
            400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded"
        )
    try:
        text = request.body.decode("utf-8")
        parsed = parse_qs(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError(400, "invalid_request", "Malformed form body") from exc
    form: dict[str, str] = {}
    for name, values in parsed.items():
        if len(values) != 1 and name not in REPEATABLE:
            raise OAuthError(400, "invalid_request", f"duplicated parameter: {name}")
        form[name] = values[0]
    return form


def form_values(request: Request, name: str) -> list[str]:
    """Every value of a repeatable parameter, in order (the body already passed `parse_form`)."""
    return parse_qs(request.body.decode("utf-8"), keep_blank_values=True).get(name, [])


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise _invalid_client()
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _invalid_client(basic=True) from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _invalid_client(basic=True)
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before base64.
    return unquote_plus(client_id), unquote_plus(secret)


class ClientAuthenticator:
    """Works out which client is calling the token endpoint, by the method the request uses."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        #: The hook for JWT-assertion client authentication (see `ClientAssertionVerifier`).
        self.assertion_verifier: ClientAssertionVerifier | None = None

    @property
    def methods(self) -> list[str]:
        """The token_endpoint_auth_methods_supported of the discovery document."""
        extra = list(self.assertion_verifier.methods) if self.assertion_verifier else []
        return [*SECRET_AUTH_METHODS, *extra]

    def authenticate(
        self, request: Request, form: Mapping[str, str], audiences: tuple[str, ...]
    ) -> Client:
        basic = _basic_credentials(request)
        has_assertion = "client_assertion" in form or "client_assertion_type" in form
        has_post_secret = "client_secret" in form
        if sum((basic is not None, has_assertion, has_post_secret)) > 1:
            raise OAuthError(
                400, "invalid_request", "more than one client authentication method used"
            )
        if basic is not None:
            return self._client_secret_basic(basic, form)
        if has_assertion:
            return self._client_assertion(form, audiences)
        return self._client_secret_post(form)

    def _client_secret_basic(self, basic: tuple[str, str], form: Mapping[str, str]) -> Client:
        client_id, secret = basic
        if form.get("client_id", client_id) != client_id:
            raise OAuthError(400, "invalid_request", "client_id does not match the credentials")
        client = self._directory.client(client_id)
        if client is None:
            raise _invalid_client(basic=True)
        if client.confidential and not client.secret_matches(secret):
            raise _invalid_client(basic=True)
        return client

    def _client_secret_post(self, form: Mapping[str, str]) -> Client:
        client_id = form.get("client_id")
        if not client_id:
            raise OAuthError(400, "invalid_request", "Missing parameter: client_id")
        client = self._directory.client(client_id)
        if client is None:
            raise _invalid_client()
        if client.confidential and not client.secret_matches(form.get("client_secret")):
            raise _invalid_client()
        return client

    def _client_assertion(self, form: Mapping[str, str], audiences: tuple[str, ...]) -> Client:
        assertion_type = form.get("client_assertion_type", "")
        assertion = form.get("client_assertion", "")
        if assertion_type != CLIENT_ASSERTION_TYPE_JWT or not assertion:
            raise OAuthError(
                400, "invalid_request", "bad client_assertion_type or client_assertion"
            )
        if self.assertion_verifier is None:
            raise OAuthError(
                401,
                "invalid_client",
                "client assertion authentication is not enabled on this DevIdP",
            )
        return self.assertion_verifier(
            ClientAssertion(
                assertion_type=assertion_type,
                assertion=assertion,
                client_id=form.get("client_id"),
                audiences=audiences,
                lookup=self._directory.client,
            )
        )
