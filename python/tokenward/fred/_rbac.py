"""Fred's RBAC-era authorization (before ReBAC): `Action`, `Resource`, `RBACProvider` on
`tokenward.rbac.Policy`, `authorize`, `is_authorized`, `authorize_or_raise`, `require_admin`,
and the 403 handler (`register_exception_handlers`)."""

from __future__ import annotations

import enum
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .._bearer import loggable
from ..rbac import Policy
from ._user import KeycloakUser

__all__ = [
    "Action",
    "AuthorizationError",
    "RBACProvider",
    "Resource",
    "authorize",
    "authorize_or_raise",
    "authz_providers",
    "is_authorized",
    "register_exception_handlers",
    "require_admin",
]

_F = TypeVar("_F", bound=Callable[..., Any])

# The denial line is tokenward.rbac's (the same words as Fred's), on the same logger.
logger = logging.getLogger("tokenward.rbac")


class Action(str, enum.Enum):
    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    READ_GLOBAL = "read:global"
    PROCESS = "process"


class Resource(str, enum.Enum):
    TAGS = "tag"
    DOCUMENTS = "document"
    DOCUMENTS_SOURCES = "documents_source"
    RESOURCES = "resource"
    TABLES = "table"
    TABLES_DATABASES = "tables_database"
    KPIS = "kpi"
    OPENSEARCH = "opensearch"
    NEO4J = "neo4j"
    LOGS = "logs"
    FILES = "files"
    FEEDBACK = "feedback"
    PROMPT_COMPLETIONS = "prompt_completions"
    METRICS = "metrics"
    AGENT = "agent"
    AGENTS = "agents"
    SESSIONS = "sessions"
    MESSAGE_ATTACHMENTS = "message_attachments"
    MCP_SERVERS = "mcp_servers"
    USER = "user"
    TEAM = "team"
    ORGANIZATION = "organization"


class AuthorizationError(PermissionError):
    """A denied action; `register_exception_handlers` answers it with a 403."""

    def __init__(
        self, user_id: str, action: str, resource: Resource, message: str | None = None
    ) -> None:
        self.user_id = user_id
        self.action = action
        self.resource = resource
        super().__init__(message or f"Not authorized to {action} {resource.value}")


_R, _CU, _CRUD = [Action.READ], [Action.CREATE], [Action.CREATE, Action.READ, Action.UPDATE]
_CRUD_D = [*_CRUD, Action.DELETE]

#: Fred's RBAC-era role table: role -> resource -> actions.
ROLE_PERMISSIONS: dict[str, dict[Resource, list[Action]]] = {
    "admin": {resource: list(Action) for resource in Resource},
    "editor": {
        Resource.TAGS: _CRUD_D,
        Resource.DOCUMENTS: _CRUD,
        Resource.RESOURCES: _CRUD_D,
        Resource.DOCUMENTS_SOURCES: _R,
        Resource.TABLES: _CRUD_D,
        Resource.TABLES_DATABASES: _CRUD_D,
        Resource.KPIS: _R,
        Resource.OPENSEARCH: _R,
        Resource.FEEDBACK: _CU,
        Resource.PROMPT_COMPLETIONS: _CU,
        Resource.METRICS: _R,
        Resource.AGENTS: _R,
        Resource.SESSIONS: _CRUD_D,
        Resource.MCP_SERVERS: _CRUD,
        Resource.MESSAGE_ATTACHMENTS: [Action.CREATE, Action.READ],
        Resource.USER: _R,
        Resource.FILES: _CRUD_D,
    },
    "viewer": {
        **{resource: _R for resource in Resource},
        Resource.FEEDBACK: _CU,
        Resource.SESSIONS: _CRUD_D,
        Resource.MESSAGE_ATTACHMENTS: _CRUD_D,
        Resource.PROMPT_COMPLETIONS: _CU,
        Resource.FILES: _CRUD_D,
    },
    "service_agent": {
        resource: _R
        for resource in (
            Resource.TAGS,
            Resource.DOCUMENTS,
            Resource.TABLES_DATABASES,
            Resource.TABLES,
            Resource.OPENSEARCH,
            Resource.METRICS,
        )
    },
}


class RBACProvider:
    """Role-based decisions on `tokenward.rbac.Policy` (by default Fred's table)."""

    def __init__(self, roles: dict[str, dict[Resource, list[Action]]] | None = None) -> None:
        self.role_permissions = ROLE_PERMISSIONS if roles is None else roles
        # Policy's spec is keyed by `str | Enum`; a Resource-keyed dict is one (Mapping keys are
        # invariant to mypy).
        self.policy = Policy(cast(Any, self.role_permissions))

    def is_authorized(self, user: KeycloakUser, action: Action, resource: Resource) -> bool:
        """Whether a role of `user` grants `action` on `resource`; a denial is logged at
        WARNING: `Authorization denied: user=<uid> roles=<roles> action=<a> resource=<r>`."""
        if self.policy.is_allowed(user.roles, action, resource):
            return True
        logger.warning(
            "Authorization denied: user=%s roles=%s action=%s resource=%s",
            loggable(user.uid),
            loggable(list(user.roles)),
            action.value,
            resource.value,
        )
        return False

    def list_permissions_for_user(self, user: KeycloakUser) -> list[str]:
        """Every `resource:action` a role of `user` grants, once each, role by role."""
        allowed: dict[str, None] = {}
        for role in user.roles:
            for resource, actions in self.role_permissions.get(role, {}).items():
                for action in actions:
                    allowed[f"{resource.value}:{action.value}"] = None
        return list(allowed)


#: Every provider must allow (Fred's list; RBAC only here).
authz_providers: list[RBACProvider] = [RBACProvider()]


def is_authorized(user: KeycloakUser, action: Action, resource: Resource) -> bool:
    return all(p.is_authorized(user, action, resource) for p in authz_providers)


def authorize_or_raise(user: KeycloakUser, action: Action, resource: Resource) -> None:
    if not is_authorized(user, action, resource):
        raise AuthorizationError(user.uid, action.value, resource)


def require_admin(user: KeycloakUser) -> None:
    if "admin" not in user.roles:
        raise AuthorizationError(user.uid, "admin", Resource.ORGANIZATION)


def _find_user(name: str, args: Iterable[Any], kwargs: dict[str, Any]) -> KeycloakUser:
    for arg in args:
        if isinstance(arg, KeycloakUser):
            return arg
    user = kwargs.get("user")
    if isinstance(user, KeycloakUser):
        return user
    raise ValueError(
        f"Method {name} decorated with @authorize must have a 'user: KeycloakUser' parameter"
    )


def authorize(action: Action, resource: Resource) -> Callable[[_F], _F]:
    """Check the `KeycloakUser` argument (positional, or the keyword `user`) before the call;
    `AuthorizationError` when denied. Works on sync and async functions."""

    def decorate(func: _F) -> _F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                authorize_or_raise(_find_user(func.__name__, args, kwargs), action, resource)
                return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authorize_or_raise(_find_user(func.__name__, args, kwargs), action, resource)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def denial_detail(exc: AuthorizationError) -> str:
    """The 403's text: `You are not allowed to <action> <resource>.`, underscores and colons
    read as spaces."""
    action = str(exc.action).replace(":", " ").replace("_", " ")
    return f"You are not allowed to {action} {exc.resource.value.replace('_', ' ')}."


def register_exception_handlers(app: FastAPI) -> None:
    """Answer `AuthorizationError` with 403 `{"detail": denial_detail(exc)}`, logged at WARNING."""

    async def forbidden(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthorizationError)
        logger.warning("Authorization denied for user %s: %s", loggable(exc.user_id), exc)
        return JSONResponse(status_code=403, content={"detail": denial_detail(exc)})

    app.add_exception_handler(AuthorizationError, forbidden)
