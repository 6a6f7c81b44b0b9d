"""The pytest plugin (loaded by every pytest run where tokenward is installed) never breaks a
run that does not use its fixtures: it imports nothing heavy, and a broken native module
fails only the tests that use the DevIdP. Each run is a real pytest in a subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

#: Makes `import tokenward._native` fail in the subprocess, as a broken install would.
BREAK_NATIVE = """
import sys
sys.modules["tokenward._native"] = None  # an import of it now raises ImportError
"""

TESTS = """
import sys

def test_unrelated():
    assert "tokenward.testing.pytest_plugin" in sys.modules  # the plugin did load
    assert "tokenward._native" not in sys.modules or sys.modules["tokenward._native"] is None

def test_uses_the_fixture(dev_idp):
    assert dev_idp.issuer
"""


def pytest_in(tmp_path: Path, *, broken: bool, select: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_project.py").write_text(textwrap.dedent(TESTS))
    env_dir = tmp_path / "site"
    env_dir.mkdir()
    if broken:
        (env_dir / "sitecustomize.py").write_text(BREAK_NATIVE)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            select,
            str(tmp_path / "test_project.py"),
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(env_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_broken_native_module_does_not_break_a_run_that_does_not_use_the_fixtures(
    tmp_path: Path,
) -> None:
    result = pytest_in(tmp_path, broken=True, select="unrelated")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_with_a_broken_native_module_only_the_fixture_s_users_fail(tmp_path: Path) -> None:
    result = pytest_in(tmp_path, broken=True, select="unrelated or fixture")
    assert result.returncode == 1
    assert "1 passed" in result.stdout and "1 error" in result.stdout
    assert "ImportError" in result.stdout or "ModuleNotFoundError" in result.stdout


def test_with_a_working_install_the_fixture_works(tmp_path: Path) -> None:
    result = pytest_in(tmp_path, broken=False, select="fixture")
    assert result.returncode == 0, result.stdout + result.stderr


def test_loading_the_plugin_imports_neither_the_devidp_nor_the_extension() -> None:
    probe = (
        "import sys, tokenward.testing.pytest_plugin; "
        "print(sorted(m for m in ('tokenward._native', 'tokenward.testing.devidp', "
        "'http.server') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
