"""Shared fixtures. `dev_idp` comes from tokenward's own pytest plugin (entry point)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tokenward as tw
from _agent_venv import make_agent_venv
from _helpers import MakeVerifier
from _redis import RedisServer
from tokenward.testing import DevIdP

#: Every Verifier in the suite gets a small HTTP timeout, so no fault can hang a test.
HTTP_TIMEOUT = 2.0


@pytest.fixture
def make_verifier(dev_idp: DevIdP) -> MakeVerifier:
    """Build a Verifier for `dev_idp` (issuer and a small http_timeout by default)."""

    def make(**settings: Any) -> tw.Verifier:
        settings.setdefault("http_timeout", HTTP_TIMEOUT)
        issuer = settings.pop("issuer", dev_idp.issuer)
        return tw.Verifier(issuer, **settings)

    return make


@pytest.fixture
def verifier(make_verifier: MakeVerifier) -> tw.Verifier:
    """A Verifier with the default policy for `dev_idp`."""
    return make_verifier()


@pytest.fixture
def evil_idp() -> Iterator[DevIdP]:
    """A second, attacker-controlled issuer (for jku/x5u and cross-issuer tokens)."""
    with DevIdP(realm="evil") as idp:
        yield idp


@pytest.fixture(scope="session")
def agent_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python of a virtualenv with tokenward and requests and nothing of FastAPI."""
    return make_agent_venv(tmp_path_factory.mktemp("agent-venv") / "venv")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own on loopback, killed when the test ends."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
