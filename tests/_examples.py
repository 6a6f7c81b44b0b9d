"""What the tests of `examples/` share: loading an example module, and a realm whose environment
is the one the example services read (and nothing else of the caller's)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from tokenward.testing import DevIdP

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: Variables the example services read that a developer's shell may have set.
_FOREIGN = (
    "KEYCLOAK_VERIFY_ISS",
    "KEYCLOAK_ALLOWED_AZP",
    "KEYCLOAK_AUDIENCE",
    "KEYCLOAK_JWKS_URL",
    "TOKENWARD_ALLOWLIST_FILE",
    "TOKENWARD_ROLE_CLIENTS",
)


def load_example(name: str, prefix: str) -> ModuleType:
    """`examples/<name>.py` as a fresh module named `<prefix>_<name>`."""
    spec = importlib.util.spec_from_file_location(f"{prefix}_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_environment(idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the example services at `idp`'s realm `dls`, with no other setting of theirs."""
    monkeypatch.setenv("KEYCLOAK_URL", idp.base_url)
    monkeypatch.setenv("KEYCLOAK_REALM", "dls")
    for name in _FOREIGN:
        monkeypatch.delenv(name, raising=False)
