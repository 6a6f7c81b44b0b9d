"""pytest plugin of tokenward (entry point `pytest11`): the `dev_idp` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .devidp import DevIdP


@pytest.fixture
def dev_idp() -> Iterator[DevIdP]:
    """A started DevIdP for realm "dls", closed after the test."""
    # Imported here so that merely having tokenward installed never breaks a pytest run.
    from .devidp import DevIdP

    with DevIdP(realm="dls") as idp:
        yield idp
