"""What the stub promises a user's type checker: float key-set durations, `from_env` typed by the
constructor's keywords and returning the class it is called on. (That the stub matches the
extension is `make lint`'s stubtest.)"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

USER_CODE = textwrap.dedent(
    """
    import tokenward as tw

    v = tw.Verifier("https://idp.example/realms/r", jwks_ttl=120.5, jwks_cooldown=0.5,
                    jwks_max_stale=3600.5, http_timeout=2.5)
    e: tw.Verifier = tw.Verifier.from_env(jwks_ttl=120.5, leeway=0)
    c: tw.TokenClient = tw.TokenClient.from_env(timeout=2, scope=["a", "b"])
    """
)


def _mypy(tmp_path: Path, code: str) -> tuple[str, int]:
    path = tmp_path / "user.py"
    path.write_text(code)
    out, err, status = mypy_api.run(
        ["--strict", "--no-incremental", "--python-version", "3.10", str(path)]
    )
    return out + err, status


def test_typical_use_type_checks(tmp_path: Path) -> None:
    out, status = _mypy(tmp_path, USER_CODE)
    assert status == 0, out


def test_a_misspelt_from_env_keyword_is_a_type_error(tmp_path: Path) -> None:
    out, status = _mypy(tmp_path, USER_CODE + "tw.Verifier.from_env(jwks_tl=1)\n")
    assert status == 1 and 'Unexpected keyword argument "jwks_tl"' in out, out
