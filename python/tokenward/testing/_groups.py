"""The DevIdP's groups: what a user's group memberships grant, and the `groups` claim.

A group, like Keycloak's, has a name, a full path ("/admins"; no subgroups here) and role
mappings: realm roles and client roles. A user is a member of a group when `add_user(groups=)`
names it by name or by path. Members get the group's roles in their tokens, on top of the
user's own. Names in `add_user(groups=)` that are not registered groups grant nothing; they
still appear in the `groups` claim, as before groups could be registered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

#: How a client's tokens carry the `groups` claim: "full_path" ("/admins", Keycloak's
#: group-membership mapper with "Full group path" on), "name" ("admins", with it off), or
#: None: the names as given to `add_user(groups=)`, unchanged.
GROUPS_CLAIM_STYLES: tuple[str | None, ...] = ("full_path", "name", None)


@dataclass(frozen=True, eq=False)  # identity: its role mappings are not hashable
class Group:
    """A realm group and its role mappings."""

    name: str
    group_id: str
    realm_roles: tuple[str, ...] = ()
    client_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return "/" + self.name


def make_group(
    name: str,
    group_id: str,
    realm_roles: Sequence[str] = (),
    client_roles: Mapping[str, Sequence[str]] | None = None,
) -> Group:
    if not name or "/" in name:
        raise ValueError("a group name must be non-empty and without '/' (no subgroups)")
    return Group(
        name=name,
        group_id=group_id,
        realm_roles=tuple(realm_roles),
        client_roles=MappingProxyType({cid: tuple(r) for cid, r in (client_roles or {}).items()}),
    )


def find_group(groups: Mapping[str, Group], reference: str) -> Group | None:
    """The registered group a user's `groups` entry names ("admins" or "/admins")."""
    return groups.get(reference.removeprefix("/"))


@dataclass(frozen=True)
class EffectiveRoles:
    """A principal's roles with its groups' roles merged in, first-seen order, no duplicates."""

    realm: tuple[str, ...]
    clients: Mapping[str, tuple[str, ...]]


def _merge(into: list[str], roles: Iterable[str]) -> None:
    for role in roles:
        if role not in into:
            into.append(role)


def effective_roles(
    realm_roles: Sequence[str],
    client_roles: Mapping[str, Sequence[str]],
    memberships: Iterable[Group],
) -> EffectiveRoles:
    realm: list[str] = list(dict.fromkeys(realm_roles))
    clients: dict[str, list[str]] = {cid: list(dict.fromkeys(r)) for cid, r in client_roles.items()}
    for group in memberships:
        _merge(realm, group.realm_roles)
        for cid, roles in group.client_roles.items():
            _merge(clients.setdefault(cid, []), roles)
    return EffectiveRoles(tuple(realm), {cid: tuple(r) for cid, r in clients.items()})


def groups_claim(
    references: Sequence[str], groups: Mapping[str, Group], style: str | None
) -> list[str]:
    """The `groups` claim for a user whose `add_user(groups=)` was `references`."""
    if style is None:
        return list(references)
    claim: list[str] = []
    for reference in references:
        group = find_group(groups, reference)
        name = group.name if group is not None else reference.rsplit("/", 1)[-1]
        _merge(claim, ["/" + name if style == "full_path" else name])
    return claim
