"""Replica processes for the shared-revocation tests (`_revocation_replica.py`), and a bounded
wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

REPLICA = Path(__file__).with_name("_revocation_replica.py")
#: Redis going away and coming back: reconnecting is bounded by the backoff (at most 1 s).
RECONNECT_SECONDS = 15.0
TIMEOUT = 10


class Replica:
    def __init__(self, process: subprocess.Popen[str], port: int, pid: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.pid = pid

    def verify(self, token: str) -> tuple[int, dict[str, Any]]:
        r = requests.get(
            f"{self.url}/verify", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )
        return r.status_code, r.json()

    def revoke(self, **what: str) -> None:
        requests.post(f"{self.url}/revoke", params=what, timeout=TIMEOUT).raise_for_status()

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = requests.get(f"{self.url}/health", timeout=TIMEOUT).json()
        return body

    def stop(self) -> None:
        if self.pid != self.process.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.kill()
        self.process.wait(timeout=TIMEOUT)


def start_replica(issuer: str, redis_url: str, *flags: str) -> Replica:
    """Starts `_revocation_replica.py`; returns once its socket listens."""
    process = subprocess.Popen(
        [sys.executable, str(REPLICA), issuer, redis_url, *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the replica prints READY once it serves
    if not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"the replica did not start: {line!r}")
    _, port, pid = line.split()
    return Replica(process, int(port), int(pid))


def wait_until(condition: Callable[[], bool], seconds: float) -> float:
    """Polls `condition` until it holds; the seconds it took. Fails after `seconds`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.01)
    return time.monotonic() - start
