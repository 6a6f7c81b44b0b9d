"""A virtualenv with tokenward and requests and nothing of FastAPI, as the SmartEM agent is
packaged: for the tests that the agent side needs nothing more.

Made without the network: `python -m venv --without-pip`, then a `.pth` file putting on its path
a directory that links only requests (and its dependencies) from this virtualenv, and
tokenward's `python/` (with the extension already built into it).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "python"

#: requests and what it imports: the whole of the agent's third-party code.
AGENT_PACKAGES = ("requests", "urllib3", "idna", "charset_normalizer", "certifi")


def make_agent_venv(where: Path) -> Path:
    """A virtualenv at `where`; returns its Python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120
    )
    python = where / "bin" / "python"
    linked = where / "agent-packages"
    linked.mkdir()
    for name in AGENT_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations, name
        (linked / name).symlink_to(next(iter(spec.submodule_search_locations)))
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    assert purelib != sysconfig.get_paths()["purelib"], "not a separate environment"
    Path(purelib, "agent.pth").write_text(f"{linked}\n{PACKAGE_ROOT}\n", encoding="utf-8")
    return python
