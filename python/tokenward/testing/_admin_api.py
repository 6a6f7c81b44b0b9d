"""A minimal slice of Keycloak's Admin REST API for the DevIdP: read-only for users and groups,
and the clients paths of `_admin_clients` (list, create, update, delete) when a `ClientAdmin` is
given.

    GET /admin/realms/{realm}/users                 search, username, email, exact, first, max,
                                                    briefRepresentation
    GET /admin/realms/{realm}/users/{id}
    GET /admin/realms/{realm}/groups                search, first, max, briefRepresentation
    GET /admin/realms/{realm}/groups/{id}/members   first, max, briefRepresentation

Like Keycloak, it answers only a bearer access token of this realm, checked by tokenward's
own `Verifier` against the realm's published keys (401 without one, or with a bad one), whose
`resource_access.realm-management.roles` hold a role that may read what is asked (403 when
not): `view-users` or `query-users` for users and members, `view-users` or `query-groups` for
groups. Users come out in Keycloak's representation (`id`, `username`, `email`, `firstName`,
`lastName`, `enabled`, ...).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote

from tokenward import InvalidToken, KeySetUnavailable, Verifier

from ._admin_clients import ClientAdmin, ClientsApi
from ._groups import Group
from ._realm import Directory, User
from ._server import Request, Response

logger = logging.getLogger("tokenward.testing")

#: The client whose roles grant access to the Admin API, as in Keycloak.
REALM_MANAGEMENT = "realm-management"
USER_READ_ROLES: tuple[str, ...] = ("view-users", "query-users")
GROUP_READ_ROLES: tuple[str, ...] = ("view-users", "query-groups")
#: Keycloak's default page size for these lists.
DEFAULT_MAX = 100


def _error(status: int, message: str) -> Response:
    return Response.json(status, {"error": message})


def _unauthorized() -> Response:
    return Response.json(
        401, {"error": "HTTP 401 Unauthorized"}, {"WWW-Authenticate": 'Bearer realm="admin"'}
    )


def _flag(value: str | None, default: bool) -> bool:
    return default if value is None else value.strip().lower() == "true"


def _int(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    value = int(raw)  # ValueError: answered 400 by the caller
    if value < 0:
        raise ValueError(name)
    return value


def user_representation(user: User, brief: bool) -> dict[str, Any]:
    """A user as Keycloak's UserRepresentation (members absent when unset, as Keycloak)."""
    document: dict[str, Any] = {
        "id": user.user_id,
        "username": user.username.lower(),
        "firstName": user.first_name,
        "lastName": user.last_name,
        "email": user.email.lower() if user.email else None,
        "emailVerified": user.email is not None,
        "createdTimestamp": user.created_ms,
        "enabled": True,
    }
    if not brief:
        document.update(
            {
                "totp": False,
                "disableableCredentialTypes": [],
                "requiredActions": [],
                "notBefore": 0,
                "access": {"manage": False},  # what a view-users holder sees
            }
        )
    return {name: value for name, value in document.items() if value is not None}


def group_representation(group: Group, brief: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": group.group_id,
        "name": group.name,
        "path": group.path,
        "subGroupCount": 0,
        "subGroups": [],
    }
    if not brief:
        document.update(
            {
                "attributes": {},
                "realmRoles": list(group.realm_roles),
                "clientRoles": {cid: list(r) for cid, r in group.client_roles.items()},
            }
        )
    return document


def _matches(user: User, query: Mapping[str, str]) -> bool:
    exact = _flag(query.get("exact"), False)
    fields = {"username": user.username, "email": user.email or ""}
    for name, value in fields.items():
        wanted = query.get(name)
        if wanted is None:
            continue
        have, want = value.lower(), wanted.lower()
        if (have != want) if exact else (want not in have):
            return False
    search = query.get("search")
    if search:
        needle = search.strip().strip("*").lower()
        haystack = (user.username, user.email, user.first_name, user.last_name)
        if not any(needle in (field or "").lower() for field in haystack):
            return False
    return True


def _by_username(users: Sequence[User]) -> list[User]:
    """Keycloak lists users ordered by username."""
    return sorted(users, key=lambda user: user.username.lower())


def _page(items: Sequence[Any], query: Mapping[str, str]) -> list[Any]:
    first = _int(query, "first", 0)
    size = _int(query, "max", DEFAULT_MAX)
    return list(items[first : first + size])


class AdminApi:
    """Serves the Admin API paths of one realm (`prefix` is `/admin/realms/{realm}`)."""

    def __init__(
        self,
        directory: Directory,
        issuer: Callable[[], str],
        jwks_uri: Callable[[], str],
        clients: ClientAdmin | None = None,
    ) -> None:
        self._directory = directory
        self._clients = ClientsApi(directory, clients) if clients is not None else None
        self._issuer = issuer
        self._jwks_uri = jwks_uri
        self._lock = threading.Lock()
        self._verifier: Verifier | None = None

    def verifier(self) -> Verifier:
        """Made on first use, so an IdP that never serves the Admin API never fetches its keys."""
        with self._lock:
            if self._verifier is None:
                self._verifier = Verifier(self._issuer(), jwks_uri=self._jwks_uri(), cache_size=0)
            return self._verifier

    def handle(self, request: Request, rest: str, location: str = "") -> Response:
        """Answer `request`, whose path below the prefix is `rest` (`location`: the prefix's
        URL, for a created client's Location header)."""
        parts = [unquote(p) for p in rest.strip("/").split("/")]
        writable = self._clients is not None and parts[0] == "clients"
        if request.method not in ("GET", "HEAD") and not writable:
            return _error(405, "HTTP 405 Method Not Allowed")
        roles = self._caller_roles(request)
        if roles is None:
            return _unauthorized()
        query = {k: v[-1] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        try:
            if writable and self._clients is not None:
                return self._clients.handle(
                    request.method, parts, query, request.body, roles, location + "/clients"
                )
            return self._route(parts, query, roles)
        except ValueError:
            return _error(400, "invalid query parameter")

    def _caller_roles(self, request: Request) -> set[str] | None:
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            claims = self.verifier().verify(token.strip())
        except (InvalidToken, KeySetUnavailable) as exc:
            logger.info("DevIdP admin API: bearer refused (%s)", getattr(exc, "code", exc))
            return None
        access = claims.get("resource_access")
        entry = access.get(REALM_MANAGEMENT) if isinstance(access, dict) else None
        roles = entry.get("roles") if isinstance(entry, dict) else None
        return {r for r in roles if isinstance(r, str)} if isinstance(roles, list) else set()

    def _route(self, parts: list[str], query: Mapping[str, str], roles: set[str]) -> Response:
        may_read_users = bool(roles & set(USER_READ_ROLES))
        if parts[0] == "users" and len(parts) <= 2:
            if not may_read_users:
                return _error(403, "HTTP 403 Forbidden")
            if len(parts) == 2:
                return self._user(parts[1])
            brief = _flag(query.get("briefRepresentation"), False)
            users = [u for u in _by_username(self._directory.users()) if _matches(u, query)]
            return Response.json(200, [user_representation(u, brief) for u in _page(users, query)])
        if parts[0] == "groups" and len(parts) in (1, 3) and parts[-1] in ("groups", "members"):
            if len(parts) == 3:
                return self._members(parts[1], query, may_read_users)
            if not roles & set(GROUP_READ_ROLES):
                return _error(403, "HTTP 403 Forbidden")
            brief = _flag(query.get("briefRepresentation"), True)
            search = (query.get("search") or "").lower()
            everyone = sorted(self._directory.groups().values(), key=lambda g: g.name)
            groups = [g for g in everyone if search in g.name.lower()]
            return Response.json(
                200, [group_representation(g, brief) for g in _page(groups, query)]
            )
        return _error(404, "Unable to find matching target resource method")

    def _user(self, user_id: str) -> Response:
        for user in self._directory.users():
            if user.user_id == user_id:
                return Response.json(200, user_representation(user, brief=False))
        return _error(404, "User not found")

    def _members(self, group_id: str, query: Mapping[str, str], allowed: bool) -> Response:
        if not allowed:
            return _error(403, "HTTP 403 Forbidden")
        group = next((g for g in self._directory.groups().values() if g.group_id == group_id), None)
        if group is None:
            return _error(404, "Could not find group by id")
        brief = _flag(query.get("briefRepresentation"), False)
        members = [
            u
            for u in _by_username(self._directory.users())
            if group in self._directory.memberships(u)
        ]
        return Response.json(200, [user_representation(u, brief) for u in _page(members, query)])
