"""Thread-safe per-endpoint counters that tests can read and wait on."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping


class EndpointCounter(Mapping[str, int]):
    """A read-only mapping endpoint -> count, updated by the server threads.

    `counter["jwks"]` reads one count; `wait_for("jwks", 2)` blocks until it reaches 2 (or a
    timeout), so tests synchronise on what the server saw instead of sleeping.
    """

    def __init__(self, endpoints: Iterable[str]) -> None:
        self._cond = threading.Condition()
        self._counts: dict[str, int] = dict.fromkeys(endpoints, 0)

    def __getitem__(self, endpoint: str) -> int:
        with self._cond:
            return self._counts[endpoint]

    def __iter__(self) -> Iterator[str]:
        with self._cond:
            return iter(list(self._counts))

    def __len__(self) -> int:
        return len(self._counts)

    def __repr__(self) -> str:
        with self._cond:
            return f"{type(self).__name__}({self._counts!r})"

    def add(self, endpoint: str, delta: int = 1) -> None:
        """Change one count (server side) and wake the waiters."""
        with self._cond:
            self._counts[endpoint] += delta
            self._cond.notify_all()

    def reset(self) -> None:
        """Set every count back to zero."""
        with self._cond:
            for endpoint in self._counts:
                self._counts[endpoint] = 0
            self._cond.notify_all()

    def wait_for(self, endpoint: str, at_least: int, timeout: float = 10.0) -> bool:
        """Block until `self[endpoint] >= at_least`; False when `timeout` seconds pass first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._counts[endpoint] >= at_least, timeout)
