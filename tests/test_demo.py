"""`python -m tokenward demo` (what `make demo` runs) passes end to end."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_and_every_step_passes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tokenward", "demo"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo passed" in done.stdout
    assert "[FAIL]" not in done.stdout
    for step in ("1000 tokens with unknown kids", "backend answers 401 once", "token near expiry"):
        assert step in done.stdout
