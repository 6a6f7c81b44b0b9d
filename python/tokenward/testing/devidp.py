"""DevIdP: a real local OIDC issuer shaped like a Keycloak realm, for tests and demos.

    with DevIdP(realm="dls") as idp:
        token = idp.mint(sub="u1")                  # a signed Keycloak-shaped access token
        verifier = tokenward.Verifier(idp.issuer)   # discovery, JWKS over real HTTP
        idp.rotate_keys(); idp.set_fault("jwks", "down"); idp.hits["jwks"]

It can also play a realm like Fred's: groups granting client roles (`add_group`), clients whose
tokens carry an audience and full-path `groups` (`add_client(audiences=, groups_claim=)`),
service accounts with `realm-management` roles, and an Admin API (`admin_url`): read-only for
users and groups, read-write for clients.

Agents can enrol themselves as Keycloak lets them: OIDC dynamic client registration with an
initial access token (`create_initial_access_token`, `registration_url`), key updates through
the registration access token, and an operator's Admin API (`set_client_enabled`,
`remove_client` are the same switches for tests).

Everything runs on 127.0.0.1 with a random port, in daemon threads; `close()` returns promptly,
also while a "slow" request is pending.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tokenward import Verifier
from tokenward._native import SigningKey, issuer_paths, realm_issuer

from ._admin_api import AdminApi
from ._client_auth import ClientAssertionAuth
from ._counters import EndpointCounter
from ._exchange import TokenExchange
from ._faults import FaultBoard
from ._keys import SUPPORTED_ALGORITHMS, KeyRing
from ._logout import BackchannelLogout, LogoutDelivery
from ._realm import GRANT_TYPES, ClientAssertionVerifier, ClientAuthenticator, Directory
from ._registration import REGISTRATION_PATH, ClientRegistration
from ._server import DevServer, Request, Response
from ._tokens import TokenEndpoint, mint_claims

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger("tokenward.testing")

#: The endpoints that can be counted and faulted.
ENDPOINTS: tuple[str, ...] = ("discovery", "jwks", "token")

#: The paths below the issuer, as the core knows them (discovery and Keycloak's fallbacks).
_PATHS: dict[str, str] = issuer_paths()

#: What a "garbage" fault answers (with status 200 and a JSON content type).
GARBAGE_BODY = b"<html><body>502 Bad Gateway</body></html>\x00\xff{"


class DevIdP:
    """A local OIDC issuer with Keycloak's paths, keys, clients, users and injectable faults.

    Attributes tests may set at any time: `jwks_max_age` (the JWKS Cache-Control max-age;
    None sends no Cache-Control), `slow_seconds` (how long a "slow" request waits before it
    answers normally), `extra_jwks` (raw JWK dicts published as-is after the real keys) and
    `client_assertion_verifier` (the private_key_jwt / client_secret_jwt hook, see
    `tokenward.testing._realm.ClientAssertionVerifier`).
    """

    def __init__(
        self,
        realm: str = "dls",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        jwks_max_age: int | None = 300,
        slow_seconds: float = 30.0,
    ) -> None:
        self.realm = realm
        self.jwks_max_age = jwks_max_age
        self.slow_seconds = slow_seconds
        self.extra_jwks: list[dict[str, Any]] = []
        self.hits = EndpointCounter(ENDPOINTS)
        """Requests received per endpoint, failed ones included."""
        self.in_flight = EndpointCounter(ENDPOINTS)
        """Requests per endpoint that have arrived and not been answered (or dropped) yet."""
        self._host = host
        self._requested_port = port
        self._keys = KeyRing("RS256")
        self._faults = FaultBoard(ENDPOINTS)
        self._directory = Directory(realm)
        self._auth = ClientAuthenticator(self._directory)
        self._client_keys = ClientAssertionAuth(lambda: self.issuer)
        self._auth.assertion_verifier = self._client_keys
        exchange = TokenExchange(self._directory, self, self._subject_verifier)
        self._token_endpoint = TokenEndpoint(self._directory, self._auth, self, exchange)
        self._registration = ClientRegistration(self)
        self._logout = BackchannelLogout(self._sign_logout_token, lambda: self.issuer)
        self._admin_api = AdminApi(
            self._directory, lambda: self.issuer, lambda: self.jwks_uri, clients=self
        )
        self._server: DevServer | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._server else "not started")
        where = self.issuer if self._server and not self._closed else self.realm
        return f"<DevIdP {where} {state}>"

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind 127.0.0.1:<port> and serve in a daemon thread. Returns self."""
        with self._lifecycle:
            if self._closed:
                raise RuntimeError("this DevIdP is closed; make a new one")
            if self._server is not None:
                return self
            server = DevServer((self._host, self._requested_port), self)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"DevIdP-{self.realm}-{server.server_port}",
                daemon=True,
            )
            self._server = server
            self._thread = thread
            thread.start()
        logger.info("DevIdP started: %s", self.issuer)
        return self

    def close(self) -> None:
        """Stop serving: pending "slow" requests and open connections are dropped. Idempotent."""
        with self._lifecycle:
            if self._closed:
                return
            self._closed = True
            server, thread = self._server, self._thread
        self._faults.close()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.cut_connections()
        if thread is not None:
            thread.join(timeout=5)
        logger.info("DevIdP closed: realm %s", self.realm)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("DevIdP not started")
        return self._server.server_port

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`: what KEYCLOAK_URL would be."""
        return f"http://{self._host}:{self.port}"

    @property
    def issuer(self) -> str:
        return realm_issuer(self.base_url, self.realm)

    @property
    def _realm_path(self) -> str:
        """The issuer's path, under which every endpoint of the realm is served."""
        return urlsplit(self.issuer).path

    @property
    def discovery_url(self) -> str:
        return self.issuer + _PATHS["discovery"]

    @property
    def jwks_uri(self) -> str:
        return self.issuer + _PATHS["jwks"]

    @property
    def token_url(self) -> str:
        return self.issuer + _PATHS["token"]

    @property
    def admin_url(self) -> str:
        """`<base>/admin/realms/<realm>`: the root of the Admin API (see `_admin_api`)."""
        return self.base_url + self._admin_path

    @property
    def _admin_path(self) -> str:
        realm_path = self._realm_path
        base = realm_path[: realm_path.rfind("/realms/")]
        return f"{base}/admin{realm_path[len(base) :]}"

    # ---- keys ------------------------------------------------------------------------------

    @property
    def current_kid(self) -> str:
        """The kid of the current RS256 key (the one `mint()` signs with by default)."""
        return self._keys.current().kid

    @property
    def kids(self) -> list[str]:
        """The published kids, oldest first (without `extra_jwks`)."""
        return self._keys.kids

    def signing_key(self, kid: str | None = None) -> SigningKey:
        """The published key `kid` (default: the current RS256 key); KeyError if unknown."""
        key = self._keys.current() if kid is None else self._keys.get(kid)
        if key is None:
            raise KeyError(kid)
        return key

    def rotate_keys(self, keep_old: bool = True) -> str:
        """A new RS256 key becomes current; the old one stays published unless `keep_old` is
        false. Returns the new kid."""
        return self._keys.rotate(keep_old).kid

    def add_key(self, alg: str = "RS256") -> str:
        """Publish a new key of `alg` (current for `alg` only if `alg` had none). Returns its kid."""
        return self._keys.add(alg).kid

    def remove_key(self, kid: str) -> None:
        """Unpublish a key (KeyError if unknown)."""
        self._keys.remove(kid)

    def jwks(self) -> dict[str, Any]:
        """The JWKS document the certs endpoint serves."""
        return {"keys": [*self._keys.public_jwks(), *list(self.extra_jwks)]}

    # ---- clients and users -----------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        secret: str | None = None,
        token_lifetime: int = 300,
        roles: Sequence[str] = (),
        *,
        jwks: Any = None,
        jwks_uri: str | None = None,
        audiences: Sequence[str] = (),
        groups_claim: str | None = None,
        client_roles: Mapping[str, Sequence[str]] | None = None,
        token_exchange: bool = False,
        name: str | None = None,
        service_account: bool = True,
        backchannel_logout_url: str | None = None,
        **extra_claims: Any,
    ) -> None:
        """Register a client. With a secret or keys it is confidential and gets service-account
        tokens (client_credentials); without, it is public (no secret; the password grant
        works, as Keycloak's direct access grants). `roles` (realm roles) and `client_roles`
        (client id -> roles, e.g. {"realm-management": ["view-users"]}) are its service
        account's, in realm_access / resource_access; `extra_claims` are added to (or, with
        None, removed from) its service-account tokens.

        `audiences` (client ids) go into the `aud` of every token issued to this client, user
        tokens included, before "account": Keycloak's audience mapper ("included client
        audience"). `groups_claim` is how its user tokens carry `groups`: "full_path"
        ("/admins"), "name" ("admins"), or None (default): the names as given to `add_user`.

        A secret allows client_secret_post, client_secret_basic and client_secret_jwt. `jwks`
        (a JWKS or JWK dict, a list of JWKs, or a `SigningKey`; private members are dropped)
        registers public keys for private_key_jwt, served at `client_jwks_uri(client_id)`;
        `jwks_uri` points at keys the client serves itself.

        `token_exchange=True` enables standard token exchange for a confidential client (the
        grant `urn:ietf:params:oauth:grant-type:token-exchange`, with Keycloak's rules: see
        `tokenward.testing._exchange`). As in Keycloak, the audiences it may exchange a user's
        token for are its `audiences` (the audience mapper) plus the clients whose roles the
        user holds.

        `name` is its display name; `service_account=False` refuses it the client_credentials
        grant (`unauthorized_client`), as Keycloak's switch.

        `backchannel_logout_url`: where `logout()` POSTs this client's logout tokens
        (Keycloak's "Backchannel logout URL")."""
        self._logout.register(client_id, backchannel_logout_url)
        self._client_keys.register(client_id, jwks, jwks_uri)
        has_keys = jwks is not None or jwks_uri is not None
        self._directory.add_client(
            client_id,
            secret,
            token_lifetime,
            roles,
            extra_claims,
            has_keys=has_keys,
            audiences=audiences,
            groups_claim=groups_claim,
            service_client_roles=client_roles,
            token_exchange=token_exchange,
            name=name,
            service_account=service_account,
        )

    # ---- client lifecycle (registration, the Admin API and tests share these) --------------

    def has_client(self, client_id: str) -> bool:
        return self._directory.client(client_id) is not None

    def client_keys(self, client_id: str) -> dict[str, Any] | None:
        """The public JWKS registered for `client_id` (None: none uploaded)."""
        return self._client_keys.document(client_id)

    def set_client_keys(self, client_id: str, jwks: Any = None, jwks_uri: str | None = None) -> None:
        """Replace the keys `client_id` signs its assertions with, as an update in Keycloak's
        console (the new set is in force for the next assertion). KeyError if unknown."""
        if self._directory.client(client_id) is None:
            raise KeyError(client_id)
        self._client_keys.register(client_id, jwks, jwks_uri)
        self._directory.update_client(
            client_id, has_keys=jwks is not None or jwks_uri is not None
        )

    def set_client_enabled(self, client_id: str, enabled: bool) -> None:
        """Keycloak's "Enabled" switch: a disabled client's token requests answer 401
        `invalid_client`, as Keycloak 26 answers them. KeyError if unknown."""
        if self._directory.update_client(client_id, enabled=bool(enabled)) is None:
            raise KeyError(client_id)

    def remove_client(self, client_id: str) -> None:
        """Delete a client, its keys and its registration access token. KeyError if unknown."""
        if not self._directory.remove_client(client_id):
            raise KeyError(client_id)
        self._client_keys.register(client_id)
        self._registration.forget(client_id)

    # ---- client registration (see `_registration`) -----------------------------------------

    @property
    def registration_url(self) -> str:
        """`{issuer}/clients-registrations`: below it, Keycloak's providers `default`
        (ClientRepresentation) and `openid-connect` (OIDC dynamic client registration)."""
        return self.issuer + REGISTRATION_PATH

    def create_initial_access_token(self, expiration: int = 0, count: int = 1) -> str:
        """An initial access token for `count` registrations, valid `expiration` seconds (0: no
        expiry), as `POST /admin/realms/{realm}/clients-initial-access` makes one."""
        return self._registration.create_initial_access_token(expiration, count)

    @property
    def registrations(self) -> int:
        """Client registrations answered 201 so far."""
        return self._registration.registrations

    def _subject_verifier(self) -> Verifier:
        """Checks token-exchange subject tokens as Keycloak does: this realm's, unexpired."""
        return Verifier(self.issuer, jwks_uri=self.jwks_uri, leeway=0, cache_size=0)

    def client_jwks_uri(self, client_id: str) -> str:
        """Where the keys registered with `add_client(client_id, jwks=...)` are served."""
        return self._client_keys.jwks_uri(client_id)

    def add_user(
        self,
        username: str,
        password: str,
        email: str | None = None,
        roles: Sequence[str] = (),
        groups: Sequence[str] = (),
        client_roles: Mapping[str, Sequence[str]] | None = None,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> str:
        """Register a user for the password grant; returns the user's id (the tokens' `sub`).
        `client_roles` maps client ids to role lists (the token's resource_access). `groups`
        names the user's groups ("admins" or "/admins"): those registered with `add_group`
        add their roles. `first_name`/`last_name` show in the Admin API."""
        user = self._directory.add_user(
            username, password, email, roles, groups, client_roles, first_name, last_name
        )
        return user.user_id

    def add_group(
        self,
        name: str,
        realm_roles: Sequence[str] = (),
        client_roles: Mapping[str, Sequence[str]] | None = None,
    ) -> str:
        """Register a top-level group (path "/<name>") whose members get `realm_roles` and
        `client_roles` (client id -> roles) in their tokens, like Keycloak's group role
        mappings. Returns the group's id (as the Admin API shows it)."""
        return self._directory.add_group(name, realm_roles, client_roles).group_id

    @property
    def client_assertion_verifier(self) -> ClientAssertionVerifier | None:
        return self._auth.assertion_verifier

    @client_assertion_verifier.setter
    def client_assertion_verifier(self, verifier: ClientAssertionVerifier | None) -> None:
        self._auth.assertion_verifier = verifier

    # ---- tokens ----------------------------------------------------------------------------

    def make_claims(
        self,
        sub: Any = "u1",
        azp: Any = "SmartEM_User",
        expires_in: int = 300,
        **claims: Any,
    ) -> dict[str, Any]:
        """The claims `mint()` would sign (a fresh jti and iat each call)."""
        return mint_claims(self.issuer, sub, azp, expires_in, claims)

    def mint(
        self,
        sub: Any = "u1",
        azp: Any = "SmartEM_User",
        expires_in: int = 300,
        kid: str | None = None,
        alg: str = "RS256",
        headers: Mapping[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed Keycloak-shaped access token.

        `claims` add or override claims (None removes one); `headers` add or override JOSE
        header members (None removes one). `alg` signs with the current key of that algorithm
        (made and published on first use). `kid` signs with that key when the idp has it;
        otherwise with the current key of `alg`, the header then carrying the unknown kid.
        A negative `expires_in` mints a token that expired that many seconds ago (issued
        300 s before it expired).
        """
        header: dict[str, Any] = {}
        key = self._keys.get(kid) if kid is not None else None
        if key is None:
            key = self._keys.current(alg)
            if kid is not None:
                header["kid"] = kid
        header.update(headers or {})
        payload = self.make_claims(sub, azp, expires_in, **claims)
        return key.sign(_compact_json(payload), _compact_json(header) if header else None)

    def logout(
        self,
        sub: str | None = None,
        sid: str | None = None,
        *,
        client_id: str | None = None,
        timeout: float = 10.0,
    ) -> list[LogoutDelivery]:
        """End a session (`sid`) or all of a user's (`sub`), as Keycloak does when a user signs
        out: a signed logout token (OpenID Connect Back-Channel Logout 1.0) is POSTed to each
        client registered with a `backchannel_logout_url` (or only to `client_id`'s). Returns
        one delivery per client, with the status its receiver answered."""
        return self._logout.send(sub, sid, client_id, timeout)

    def logout_token(
        self, client_id: str, sub: str | None = None, sid: str | None = None, **claims: Any
    ) -> str:
        """The logout token `logout()` would send to `client_id` (a fresh jti and iat);
        `claims` add or override claims (None removes one), for testing receivers."""
        return self._logout.token(client_id, sub, sid, **claims)

    def _sign_logout_token(self, claims: Mapping[str, Any]) -> str:
        # The spec's explicit type (section 2.4), as Keycloak sends it.
        header = _compact_json({"typ": "logout+jwt"})
        return self._keys.current().sign(_compact_json(dict(claims)), header)

    def sign_claims(self, claims: Mapping[str, Any]) -> str:
        """Sign exactly these claims with the current RS256 key."""
        return self._keys.current().sign(_compact_json(dict(claims)), None)

    # ---- faults ----------------------------------------------------------------------------

    def set_fault(self, endpoint: str, fault: str | None) -> None:
        """Make `endpoint` ("jwks", "token", "discovery") fail: None (healthy), "down" (the
        connection is closed without an answer), "500", "slow" (answers after `slow_seconds`,
        or as soon as the fault changes; dropped on close) or "garbage" (200, not JSON)."""
        self._faults.set(endpoint, fault)
        logger.info("DevIdP fault: %s -> %s", endpoint, fault)

    def fault(self, endpoint: str) -> str | None:
        return self._faults.get(endpoint)

    # ---- HTTP ------------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        """The openid-configuration document."""
        issuer = self.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/protocol/openid-connect/auth",
            "token_endpoint": self.token_url,
            "jwks_uri": self.jwks_uri,
            "grant_types_supported": list(GRANT_TYPES),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(SUPPORTED_ALGORITHMS),
            "token_endpoint_auth_methods_supported": self._auth.methods,
            "token_endpoint_auth_signing_alg_values_supported": list(SUPPORTED_ALGORITHMS),
            "scopes_supported": ["openid", "profile", "email"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "azp",
                "typ",
                "jti",
                "scope",
                "preferred_username",
                "email",
                "email_verified",
                "realm_access",
                "resource_access",
                "groups",
            ],
        }

    def _route(self, path: str) -> str | None:
        prefix = self._realm_path
        if not path.startswith(prefix + "/"):
            return None
        rest = path[len(prefix) :]
        for endpoint, suffix in _PATHS.items():
            if rest == suffix:
                return endpoint
        return None

    def handle(self, request: Request) -> Response | None:
        """Answer one HTTP request (called by the server threads)."""
        endpoint = self._route(request.path)
        if endpoint is None and request.path.startswith(self._admin_path + "/"):
            rest = request.path[len(self._admin_path) :]
            return self._admin_api.handle(request, rest, self.admin_url)
        registration = self._realm_path + REGISTRATION_PATH
        if endpoint is None and request.path.startswith(registration + "/"):
            rest = request.path[len(registration) :]
            return self._registration.handle(request, rest, self.issuer)
        if endpoint is None:
            keys = self._client_keys.serve(self._realm_path, request.path)
            if keys is not None:
                return keys
            return Response.json(404, {"error": "Unable to find matching target resource method"})
        self.hits.add(endpoint)
        self.in_flight.add(endpoint)
        try:
            fault = self._faults.resolve(endpoint, self.slow_seconds)
            if fault == "down":
                return None
            if fault == "500":
                return Response.json(500, {"error": "unknown_error"})
            if fault == "garbage":
                return Response(200, GARBAGE_BODY, "application/json")
            return self._serve(endpoint, request)
        finally:
            self.in_flight.add(endpoint, -1)

    def _serve(self, endpoint: str, request: Request) -> Response:
        if endpoint == "token":
            return self._token_endpoint.handle(request)
        if request.method not in ("GET", "HEAD"):
            return Response.json(405, {"error": "HTTP method not allowed"}, {"Allow": "GET"})
        if endpoint == "discovery":
            return Response.json(200, self.discovery())
        headers = {}
        if self.jwks_max_age is not None:
            headers["Cache-Control"] = f"max-age={int(self.jwks_max_age)}"
        return Response.json(200, self.jwks(), headers)


def _compact_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))
