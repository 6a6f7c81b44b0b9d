"""Module attributes loaded on first access (PEP 562), for the packages that must import cheaply
(`tokenward`, `tokenward.testing`, `tokenward.fred`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(
    package: str, namespace: dict[str, Any], homes: Mapping[str, str]
) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `homes` maps a name to the module (relative to
    `package`) that defines it; the value is imported on first access and kept in `namespace`
    (the module's globals), so later lookups no longer come here."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, package), name)
        namespace[name] = value
        return value

    return __getattr__
