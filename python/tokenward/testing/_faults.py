"""Injected faults per endpoint, and the wait of a "slow" request (interruptible)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

#: The faults `DevIdP.set_fault` accepts; None is healthy.
FAULTS: tuple[str | None, ...] = (None, "down", "500", "slow", "garbage")


class FaultBoard:
    """The current fault of each endpoint.

    A request on a "slow" endpoint waits on a condition, not on time.sleep: it is woken at once
    when the fault changes (it then acts on the new fault: healing lets it answer normally) or
    when the board closes (it is then dropped), and answers normally after `slow_seconds`.
    """

    def __init__(self, endpoints: Iterable[str]) -> None:
        self._cond = threading.Condition()
        self._faults: dict[str, str | None] = dict.fromkeys(endpoints)
        self._closed = False

    def __repr__(self) -> str:
        with self._cond:
            return f"FaultBoard({self._faults!r})"

    def set(self, endpoint: str, fault: str | None) -> None:
        if endpoint not in self._faults:
            raise ValueError(
                f"unknown endpoint {endpoint!r}: expected one of {sorted(self._faults)}"
            )
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: expected one of {list(FAULTS)}")
        with self._cond:
            self._faults[endpoint] = fault
            self._cond.notify_all()

    def get(self, endpoint: str) -> str | None:
        with self._cond:
            return self._faults[endpoint]

    def close(self) -> None:
        """Wake every waiting request; from now on every request is dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def resolve(self, endpoint: str, slow_seconds: float) -> str | None:
        """The fault to apply to a request that just arrived at `endpoint`.

        Never returns "slow": a slow request waits here first. Returns "down" once closed.
        """
        deadline = time.monotonic() + slow_seconds
        with self._cond:
            while True:
                if self._closed:
                    return "down"
                fault = self._faults[endpoint]
                if fault != "slow":
                    return fault
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
