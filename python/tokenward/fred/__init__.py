"""Fred (ThalesGroup/fred, `fred_core.security`), name for name, on tokenward.

    from tokenward.fred import KeycloakUser, get_current_user, initialize_user_security
    from tokenward.fred import Action, Resource, authorize

One module for Fred's `oidc`, `structure`, `models`, `rbac`, `authorization`,
`authorization_decorator`, `whitelist_access_control.access_control`, `outbound` and
`backend_to_backend_auth` (README, "Fred"; docs/migration.md for the import swap and every
difference). Importing it needs fastapi and pydantic, not Fred; the service-to-service names
(`M2M*`, `ClientCredentialsProvider`, `BearerAuth`, `make_m2m_asgi_client`) import httpx (and
requests for `BearerAuth`) on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from ._allowlist import (
    is_email_whitelisted,
    is_user_whitelisted,
    is_whitelist_active,
    retrieve_authorized_users,
    set_whitelist_path,
)
from ._auth import (
    FredSecurity,
    decode_jwt,
    get_current_user,
    get_current_user_without_gcu,
    get_keycloak_client_id,
    get_keycloak_url,
    initialize_user_security,
    oauth2_scheme,
    split_realm_url,
)
from ._rbac import (
    ROLE_PERMISSIONS,
    Action,
    AuthorizationError,
    RBACProvider,
    Resource,
    authorize,
    authorize_or_raise,
    authz_providers,
    denial_detail,
    is_authorized,
    register_exception_handlers,
    require_admin,
)
from ._settings import FredSettings
from ._user import SERVICE_AGENT_ROLE, KeycloakUser, UserSecurity, is_service_agent

if TYPE_CHECKING:
    from ._m2m import (
        BearerAuth,
        ClientCredentialsProvider,
        M2MAuthConfig,
        M2MBearerAuth,
        M2MTokenProvider,
        make_m2m_asgi_client,
    )

# The service-account helpers need TokenClient (the native module) and httpx: loaded on first use.
_M2M = {
    name: "._m2m"
    for name in (
        "BearerAuth",
        "ClientCredentialsProvider",
        "M2MAuthConfig",
        "M2MBearerAuth",
        "M2MTokenProvider",
        "make_m2m_asgi_client",
    )
}

__all__ = [
    "ROLE_PERMISSIONS",
    "SERVICE_AGENT_ROLE",
    "Action",
    "AuthorizationError",
    "BearerAuth",
    "ClientCredentialsProvider",
    "FredSecurity",
    "FredSettings",
    "KeycloakUser",
    "M2MAuthConfig",
    "M2MBearerAuth",
    "M2MTokenProvider",
    "RBACProvider",
    "Resource",
    "UserSecurity",
    "authorize",
    "authorize_or_raise",
    "authz_providers",
    "decode_jwt",
    "denial_detail",
    "get_current_user",
    "get_current_user_without_gcu",
    "get_keycloak_client_id",
    "get_keycloak_url",
    "initialize_user_security",
    "is_authorized",
    "is_email_whitelisted",
    "is_service_agent",
    "is_user_whitelisted",
    "is_whitelist_active",
    "make_m2m_asgi_client",
    "oauth2_scheme",
    "register_exception_handlers",
    "require_admin",
    "retrieve_authorized_users",
    "set_whitelist_path",
    "split_realm_url",
]


__getattr__ = lazy_getattr(__name__, globals(), _M2M)
