"""pytest plugin of tokenward (entry point `pytest11`): the `dev_idp` and `clock` fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


@pytest.fixture
def clock() -> Iterator[Callable[[float], None]]:
    """`clock(seconds)` moves tokenward's clock forward; the real time is back after the test."""
    from .clock import advance_clock, reset_clock

    try:
        yield advance_clock
    finally:
        reset_clock()
