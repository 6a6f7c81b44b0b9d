"""Test helpers: `DevIdP`, a real local OIDC issuer shaped like a Keycloak realm.

The pytest plugin (`tokenward.testing.pytest_plugin`, registered by the package's entry point)
provides the `dev_idp` and `clock` fixtures. Every pytest run in an environment with tokenward
installed loads that plugin, so nothing here is imported until it is used: the DevIdP (with
`http.server` and `ssl`) and the native module load on first access, and a broken install
breaks only the tests that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

if TYPE_CHECKING:
    from .clock import advance_clock, reset_clock
    from .devidp import DevIdP

__all__ = ["DevIdP", "advance_clock", "reset_clock"]

_HOMES = {"DevIdP": ".devidp", "advance_clock": ".clock", "reset_clock": ".clock"}


__getattr__ = lazy_getattr(__name__, globals(), _HOMES)
