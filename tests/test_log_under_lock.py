"""The core never logs while it holds a lock: a log record takes the GIL, so a thread that holds
the GIL and waits for that lock (a probe calling `health()`) would deadlock with the fetch. A
handler that calls `health()` from inside the record makes the old deadlock certain, not a race:
the record is handled on the fetching thread itself."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tokenward as tw
from _helpers import MakeVerifier
from tokenward.testing import DevIdP

SECRET = "s3cret-for-log-under-lock"


class HealthInHandler(logging.Handler):
    """Calls `probe()` for every record of the core's fetch paths, and keeps what it saw."""

    def __init__(self, probe: Callable[[], dict[str, Any]]) -> None:
        super().__init__(logging.DEBUG)
        self.probe = probe
        self.seen: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("tokenward.jwks", "tokenward.token")):
            self.seen.append(self.probe())


@pytest.fixture
def debug_logs() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tokenward")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.setLevel(level)


def finishes(action: Callable[[], object]) -> bool:
    """Runs `action` on a thread; True when it returns (or raises) within 10 s."""
    done = threading.Event()

    def run() -> None:
        try:
            action()
        except tw.TokenwardError:
            pass
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(10)


def test_health_from_a_log_record_during_a_key_fetch(
    dev_idp: DevIdP, make_verifier: MakeVerifier, debug_logs: logging.Logger
) -> None:
    verifier = make_verifier()
    handler = HealthInHandler(verifier.health)
    debug_logs.addHandler(handler)
    try:
        assert finishes(verifier.warm)
        dev_idp.set_fault("jwks", "down")
        assert finishes(lambda: verifier.verify(dev_idp.mint(kid="rotated-away")))
    finally:
        debug_logs.removeHandler(handler)
    assert handler.seen, "the fetch logged nothing, so the test proved nothing"
    assert verifier.health()["ready"] is True


def test_health_from_a_log_record_during_a_failed_token_refresh(
    dev_idp: DevIdP, debug_logs: logging.Logger
) -> None:
    dev_idp.add_client("log-agent", secret=SECRET)
    client = tw.TokenClient(
        dev_idp.token_url, client_id="log-agent", client_secret=SECRET, timeout=2
    )
    handler = HealthInHandler(client.health)
    debug_logs.addHandler(handler)
    try:
        dev_idp.set_fault("token", "down")
        assert finishes(client.get_token)
    finally:
        debug_logs.removeHandler(handler)
    assert handler.seen, "the refresh logged nothing, so the test proved nothing"
    assert client.health()["last_error"]
