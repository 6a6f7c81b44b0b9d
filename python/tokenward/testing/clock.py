"""Moving tokenward's clock forward in tests, so expiry, refresh-ahead and stale keys can be
exercised without waiting. Affects the whole process: use the `advance_clock` fixture, which
puts the real time back after each test."""

from __future__ import annotations

from .. import _native


def advance_clock(seconds: float) -> None:
    """Move the time tokenward's verifier and key cache read forward by `seconds`."""
    _native._advance_clock(seconds)


def reset_clock() -> None:
    """Back to the real time."""
    _native._reset_clock()
