"""Test helpers: `DevIdP`, a real local OIDC issuer shaped like a Keycloak realm.

The pytest plugin (`tokenward.testing.pytest_plugin`, registered by the package's entry point)
provides the `dev_idp` fixture.
"""

from .clock import advance_clock, reset_clock
from .devidp import DevIdP

__all__ = ["DevIdP", "advance_clock", "reset_clock"]
