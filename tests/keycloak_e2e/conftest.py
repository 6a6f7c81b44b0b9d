"""The Keycloak behind the end-to-end suite.

The `keycloak` fixture runs `scripts/keycloak.sh fetch` (a no-op once Keycloak is in the cache)
and `start`, and stops that server when the last test of this package has run, whatever the
outcome: a `finally` in the fixture; SIGTERM turned into a KeyboardInterrupt (so it tears down
too); an `atexit` backstop; and, for a run killed with SIGKILL, the next run stops what it left.
Package scope (for this package it is the session: one start for all its tests) so that the
JVM does not idle through the rest of the suite. Each run has a state file of its own
(`$CACHE/pytest-<pid>.env`), so a Keycloak someone started by hand is left alone.

When Keycloak cannot be fetched or started, the fixture errors and so does every test here:
the suite never skips silently. `TOKENWARD_SKIP_KEYCLOAK=1` deselects these tests explicitly
(for quick local runs; CI never sets it).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from ._kc import Keycloak

logger = logging.getLogger("tokenward.tests.keycloak")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "keycloak.sh"
SKIP_ENV = "TOKENWARD_SKIP_KEYCLOAK"

#: Bounds on the script itself (it has its own readiness deadline, 180 s by default).
FETCH_TIMEOUT = 900
START_TIMEOUT = 300
STOP_TIMEOUT = 90


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`TOKENWARD_SKIP_KEYCLOAK=1`: deselect (and report as deselected) the keycloak tests."""
    if os.environ.get(SKIP_ENV) != "1":
        return
    deselected = [item for item in items if item.get_closest_marker("keycloak")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("keycloak")]


def _script(command: str, env: dict[str, str], timeout: float) -> str:
    """Run `scripts/keycloak.sh <command>`; its stdout, or a failure naming what went wrong."""
    try:
        done = subprocess.run(
            [str(SCRIPT), command],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise RuntimeError(f"keycloak.sh {command} took over {timeout} s\n{stderr}") from None
    if done.returncode != 0:
        raise RuntimeError(
            f"keycloak.sh {command} failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    return done.stdout


class _Stop:
    """`keycloak.sh stop` for one state file, at most once (fixture teardown or atexit)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.lock = threading.Lock()
        self.done = False

    def __call__(self) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
            try:
                _script("stop", self.env, STOP_TIMEOUT)
            except RuntimeError as exc:
                logger.error("could not stop Keycloak: %s", exc)
                raise


def _stop_orphans(cache: Path) -> None:
    """Stop the Keycloak of an earlier run of this suite whose pytest died without cleaning up
    (SIGKILL skips every handler): its state file names a pid that no longer runs."""
    for state in cache.glob("pytest-*.env"):
        try:
            os.kill(int(state.stem.removeprefix("pytest-")), 0)
            continue  # that run is still going
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue
        logger.warning("stopping the Keycloak left behind by a dead test run (%s)", state)
        _script("stop", {**os.environ, "TOKENWARD_KEYCLOAK_STATE": str(state)}, STOP_TIMEOUT)


def _sigterm_interrupts() -> bool:
    """Make SIGTERM (a CI job's timeout, a plain `kill`) a KeyboardInterrupt, which pytest
    answers by tearing fixtures down; by default SIGTERM ends Python at once, with no teardown
    and no atexit, and Keycloak (in a session of its own) would run on. Only when nobody else
    handles SIGTERM; True if the handler was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    return True


@pytest.fixture(scope="package")
def keycloak() -> Iterator[Keycloak]:
    """A fresh Keycloak with the realm `dls` imported, on loopback."""
    cache = Path(
        os.environ.get("TOKENWARD_KEYCLOAK_CACHE", Path.home() / ".cache/tokenward/keycloak")
    )
    env = {**os.environ, "TOKENWARD_KEYCLOAK_STATE": str(cache / f"pytest-{os.getpid()}.env")}
    stop = _Stop(env)
    atexit.register(stop)
    handles_sigterm = _sigterm_interrupts()
    try:
        try:
            _stop_orphans(cache)
            _script("fetch", env, FETCH_TIMEOUT)
            out = _script("start", env, START_TIMEOUT)
        except (RuntimeError, OSError) as exc:
            pytest.fail(f"Keycloak could not be started: {exc}", pytrace=False)
        urls = [
            line.split("=", 1)[1] for line in out.splitlines() if line.startswith("KEYCLOAK_URL=")
        ]
        if len(urls) != 1:
            pytest.fail(f"keycloak.sh start printed no KEYCLOAK_URL: {out!r}", pytrace=False)
        logger.info("Keycloak ready at %s", urls[0])
        yield Keycloak(urls[0])
    finally:
        try:
            stop()
        finally:
            atexit.unregister(stop)
            if handles_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
