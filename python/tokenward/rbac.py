"""Role-based permissions: a role -> {resource: actions} policy, checked per request.

    from tokenward.rbac import Policy

    policy = Policy({
        "admin":  {"*": ["*"]},
        "editor": {"documents": ["read", "create", "update"], "tags": ["read"]},
        "viewer": {"documents": ["read"]},
    })

    @app.delete("/documents/{doc_id}")
    async def delete(doc_id: str, user: User = Depends(policy.authorize("delete", "documents"))):
        ...

Rules:
- a user's permissions are the union over their roles (`User.roles`: realm roles plus the
  client roles of the authenticator's `role_clients`);
- a role the policy does not name grants nothing, and neither does a user without roles;
- `"*"` as a resource grants its actions on every resource, `"*"` as an action every action
  on its resource; no other pattern matching is done (names are compared exactly);
- actions and resources may be strings or `enum.Enum` members (their `value` is used).

A denial answers 403 (`WWW-Authenticate: Bearer error="insufficient_scope"`, RFC 6750) and logs
at WARNING on logger `tokenward.rbac`:
`Authorization denied: user=<uid> roles=<roles> action=<action> resource=<resource>`, with
control characters in the claims (uid, roles) escaped (`tokenward._bearer.loggable`).

Two forms:
- `policy.authorize(action, resource)`: a FastAPI dependency that returns the `User`;
- `@policy.requires(action, resource)`: a decorator for a function (sync or async) that
  takes a `User` (positionally, or as the keyword argument `user`): a FastAPI endpoint with a
  `user: User = Depends(get_current_user)` parameter, or a service-layer method.
The module-level `authorize` and `requires` use the policy set with `set_policy`.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from fastapi import Depends, HTTPException

from ._bearer import loggable
from .fastapi import User, get_current_user

__all__ = [
    "WILDCARD",
    "Policy",
    "authorize",
    "forbidden",
    "get_policy",
    "requires",
    "set_policy",
]

logger = logging.getLogger("tokenward.rbac")

WILDCARD = "*"

Name = str | enum.Enum
PolicySpec = Mapping[Name, Mapping[Name, Iterable[Name] | Name]]
_F = TypeVar("_F", bound=Callable[..., Any])


def _name(value: Name) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if not isinstance(value, str):
        raise TypeError(f"role, resource and action names must be strings, not {value!r}")
    return value


def forbidden(description: str = "Permission denied") -> HTTPException:
    """The 403 of an authenticated user who lacks a permission."""
    return HTTPException(
        status_code=403,
        detail=description,
        headers={
            "WWW-Authenticate": (
                f'Bearer error="insufficient_scope", error_description="{description}"'
            )
        },
    )


class Policy:
    """An immutable role -> {resource: actions} policy."""

    def __init__(self, roles: PolicySpec) -> None:
        table: dict[str, dict[str, frozenset[str]]] = {}
        for role, resources in roles.items():
            grants: dict[str, frozenset[str]] = {}
            for resource, actions in resources.items():
                if isinstance(actions, (str, enum.Enum)):
                    actions = [actions]
                grants[_name(resource)] = frozenset(_name(a) for a in actions)
            table[_name(role)] = grants
        self._roles = table

    def __repr__(self) -> str:
        return f"Policy(roles={sorted(self._roles)})"

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self._roles)

    def is_allowed(self, roles: Iterable[str], action: Name, resource: Name) -> bool:
        """Whether any of `roles` grants `action` on `resource`."""
        action, resource = _name(action), _name(resource)
        for role in roles:
            grants = self._roles.get(role)
            if not grants:
                continue
            for key in (resource, WILDCARD):
                actions = grants.get(key)
                if actions and (action in actions or WILDCARD in actions):
                    return True
        return False

    def permissions(self, roles: Iterable[str]) -> dict[str, frozenset[str]]:
        """The union of the grants of `roles`: resource -> actions (wildcards kept as is)."""
        merged: dict[str, set[str]] = {}
        for role in roles:
            for resource, actions in self._roles.get(role, {}).items():
                merged.setdefault(resource, set()).update(actions)
        return {resource: frozenset(actions) for resource, actions in merged.items()}

    def check(self, user: User, action: Name, resource: Name) -> None:
        """Return if `user` may do `action` on `resource`; else log and raise the 403."""
        if self.is_allowed(user.roles, action, resource):
            return
        logger.warning(
            "Authorization denied: user=%s roles=%s action=%s resource=%s",
            # Claims, signed but chosen by whoever controls the account: escaped.
            loggable(user.uid),
            loggable(list(user.roles)),
            _name(action),
            _name(resource),
        )
        raise forbidden()

    def authorize(
        self,
        action: Name,
        resource: Name,
        *,
        user_dependency: Callable[..., Any] = get_current_user,
    ) -> Callable[..., Any]:
        """A dependency that returns the `User` when allowed and answers 403 otherwise.

        `user_dependency` gives the user (default: `tokenward.fastapi.get_current_user`;
        pass `auth.user` for a specific `Authenticator`)."""
        return _authorize(lambda: self, action, resource, user_dependency)

    def requires(self, action: Name, resource: Name) -> Callable[[_F], _F]:
        """A decorator checking the `User` argument of the decorated function."""
        return _requires(lambda: self, action, resource)


_policy = Policy({})


def set_policy(policy: Policy | PolicySpec) -> Policy:
    """Set the policy used by the module-level `authorize` and `requires`."""
    global _policy
    _policy = policy if isinstance(policy, Policy) else Policy(policy)
    return _policy


def get_policy() -> Policy:
    """The policy set with `set_policy` (an empty one, which denies everything, until then)."""
    return _policy


def authorize(
    action: Name,
    resource: Name,
    *,
    policy: Policy | None = None,
    user_dependency: Callable[..., Any] = get_current_user,
) -> Callable[..., Any]:
    """A dependency: the `User` when `policy` (default: the module policy, looked up on each
    request) grants `action` on `resource`; 403 otherwise."""
    if policy is not None:
        return policy.authorize(action, resource, user_dependency=user_dependency)
    return _authorize(get_policy, action, resource, user_dependency)


def requires(action: Name, resource: Name, *, policy: Policy | None = None) -> Callable[[_F], _F]:
    """Decorator form of `authorize` (default: the module policy, looked up on each call)."""
    if policy is not None:
        return policy.requires(action, resource)
    return _requires(get_policy, action, resource)


def _authorize(
    policy: Callable[[], Policy],
    action: Name,
    resource: Name,
    user_dependency: Callable[..., Any],
) -> Callable[..., Any]:
    _name(action), _name(resource)  # fail early on bad names

    user_param = Depends(user_dependency)

    async def authorized_user(user: User = user_param) -> User:
        policy().check(user, action, resource)
        return user

    authorized_user.__name__ = f"authorize_{_name(action)}_{_name(resource)}"
    return authorized_user


def _find_user(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> User:
    candidate = kwargs.get("user")
    if isinstance(candidate, User):
        return candidate
    for value in (*args, *kwargs.values()):
        if isinstance(value, User):
            return value
    raise TypeError(
        f"{func.__qualname__} is decorated with requires() but was called without a User"
    )


def _requires(policy: Callable[[], Policy], action: Name, resource: Name) -> Callable[[_F], _F]:
    _name(action), _name(resource)

    def decorate(func: _F) -> _F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                policy().check(_find_user(func, args, kwargs), action, resource)
                return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            policy().check(_find_user(func, args, kwargs), action, resource)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
