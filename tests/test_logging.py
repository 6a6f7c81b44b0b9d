"""Rust log records in Python `logging`: level changes take effect at once, only `tokenward.*`
loggers are used, and a warning repeated per request during an outage is rate-limited."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import requests
import tokenward as tw
from _helpers import MakeVerifier
from _uvicorn import serve
from fastapi import Depends, FastAPI
from tokenward import _native
from tokenward.fastapi import Authenticator
from tokenward.testing import DevIdP

Clock = Callable[[float], None]


def burst_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("log burst record")]


def test_a_level_change_takes_effect_at_the_next_record(caplog: pytest.LogCaptureFixture) -> None:
    for level in ("WARNING", "DEBUG", "ERROR", "DEBUG", "INFO"):
        caplog.clear()
        caplog.set_level(level, logger="tokenward")
        for rust_level in ("debug", "info", "warn", "error"):
            _native._log_burst(rust_level, 1)
        shown = [r.levelname for r in burst_lines(caplog)]
        expected = [
            name
            for name in ("DEBUG", "INFO", "WARNING", "ERROR")
            if logging.getLevelName(name) >= logging.getLevelName(level)
        ]
        assert shown == expected, level
        assert {r.name for r in burst_lines(caplog)} == {"tokenward.python.logging"}


def test_debug_lines_of_a_fetch_show_after_a_verify_at_warning(
    dev_idp: DevIdP, make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tokenward")
    make_verifier().verify(dev_idp.mint())
    assert not [r for r in caplog.records if r.levelno < logging.WARNING]

    caplog.set_level(logging.DEBUG, logger="tokenward")
    make_verifier().verify(dev_idp.mint())
    fetched = [r for r in caplog.records if "usable keys" in r.getMessage()]
    assert fetched and fetched[0].levelno == logging.DEBUG
    assert fetched[0].name == "tokenward.jwks.cache"


def test_no_logger_outside_tokenward(
    dev_idp: DevIdP, make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # TLS to a plain-HTTP port: the TLS stack, hyper and reqwest all have something to say.
    verifier = make_verifier(jwks_uri=dev_idp.jwks_uri.replace("http://", "https://"))
    with pytest.raises(tw.KeySetUnavailable):
        verifier.refresh_keys()
    make_verifier().verify(dev_idp.mint())
    names = {r.name for r in caplog.records if r.name != "asyncio"}
    assert names, "some tokenward record was expected"
    assert all(n == "tokenward" or n.startswith("tokenward.") for n in names), names


def test_the_outage_warning_is_rate_limited_with_a_count(
    dev_idp: DevIdP, make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture, clock: Clock
) -> None:
    auth = Authenticator(make_verifier(jwks_uri=dev_idp.jwks_uri), allowlist=False)
    app = FastAPI(dependencies=[Depends(auth.app_dependency)])

    @app.get("/x")
    async def x() -> dict[str, str]:
        return {}

    dev_idp.set_fault("jwks", "down")
    caplog.set_level(logging.WARNING, logger="tokenward")
    headers = {"Authorization": f"Bearer {dev_idp.mint()}"}
    with serve(app) as url:
        for _ in range(5):
            assert requests.get(f"{url}/x", headers=headers, timeout=10).status_code == 503
        lines = [r.getMessage() for r in caplog.records if "answering 503" in r.getMessage()]
        assert len(lines) == 1 and "more like it" not in lines[0]
        clock(11)
        assert requests.get(f"{url}/x", headers=headers, timeout=10).status_code == 503
    lines = [r.getMessage() for r in caplog.records if "answering 503" in r.getMessage()]
    assert len(lines) == 2
    assert lines[1].endswith("(4 more like it since the last line)"), lines[1]
