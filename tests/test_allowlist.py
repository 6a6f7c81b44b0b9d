"""tokenward.allowlist: the file rules, hot reload, and the 403 over real HTTP."""

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import requests
import tokenward.allowlist as allowlist_module
from _uvicorn import serve
from conftest import MakeVerifier
from fastapi import Depends, FastAPI
from tokenward.allowlist import EmailAllowlist, parse_allowlist
from tokenward.fastapi import Authenticator, User
from tokenward.testing import DevIdP

TIMEOUT = 10


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def bump_mtime(path: Path) -> None:
    """Move the file's mtime forward by a second, so a same-size rewrite is always visible
    (file system timestamps are coarser than the time between two writes in a test)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


# ---- parsing -------------------------------------------------------------------------------------


def test_parse_allowlist() -> None:
    text = (
        "# who may use the service\n"
        "\n"
        "  Alice@Example.ORG  \n"
        "bob@example.org # team lead\n"
        "\t# indented comment\n"
        "odd#name@example.org\n"
        "carol@example.org\t#tabbed comment\n"
    )
    assert parse_allowlist(text) == frozenset(
        {"alice@example.org", "bob@example.org", "odd#name@example.org", "carol@example.org"}
    )


# ---- states --------------------------------------------------------------------------------------


def test_no_path_is_off() -> None:
    allowlist = EmailAllowlist(None)
    assert not allowlist.enabled
    assert allowlist.allows(None)
    assert EmailAllowlist("").path is None


def test_absent_file_is_off(tmp_path: Path) -> None:
    allowlist = EmailAllowlist(tmp_path / "users.txt")
    assert allowlist.entries() is None
    assert allowlist.allows("anyone@example.org")


@pytest.mark.parametrize("text", ["", "\n\n  \n", "# nobody yet\n   # still nobody\n"])
def test_empty_or_comments_only_is_off(tmp_path: Path, text: str) -> None:
    path = tmp_path / "users.txt"
    write(path, text)
    allowlist = EmailAllowlist(path)
    assert allowlist.entries() is None
    assert allowlist.allows("anyone@example.org")


def test_unreadable_directory_is_off_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A directory cannot be read as a file, whoever runs the tests (root ignores chmod 000).
    path = tmp_path / "users.txt"
    path.mkdir()
    allowlist = EmailAllowlist(path)
    with caplog.at_level(logging.WARNING, logger="tokenward.allowlist"):
        assert allowlist.allows("anyone@example.org")
        assert allowlist.allows("anyone@example.org")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per change, not per request"
    assert str(path) in warnings[0].getMessage()


def test_not_utf8_is_off_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "users.txt"
    path.write_bytes(b"alice@example.org\n\xff\xfe\x00bad\n")
    with caplog.at_level(logging.WARNING, logger="tokenward.allowlist"):
        assert EmailAllowlist(path).entries() is None
    assert any("cannot be read" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_off_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "users.txt"
    write(path, "alice@example.org\n")
    path.chmod(0)
    try:
        with caplog.at_level(logging.WARNING, logger="tokenward.allowlist"):
            assert EmailAllowlist(path).entries() is None
        assert any("cannot be read" in r.getMessage() for r in caplog.records)
    finally:
        path.chmod(0o600)


def test_on_compares_normalized_emails(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    write(path, "Alice@Example.org\n")
    allowlist = EmailAllowlist(path)
    assert allowlist.enabled
    assert allowlist.allows("alice@example.org")
    assert allowlist.allows("ALICE@EXAMPLE.ORG")
    # The claim is compared as it is (issue 11, item 16): spaces make it another string.
    assert not allowlist.allows("  ALICE@EXAMPLE.ORG ")
    assert not allowlist.allows("bob@example.org")
    assert not allowlist.allows(None)
    assert not allowlist.allows(["alice@example.org"])


def test_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "users.txt"
    write(path, "alice@example.org\n")
    monkeypatch.setenv("TOKENWARD_ALLOWLIST_FILE", str(path))
    assert EmailAllowlist.from_env().entries() == frozenset({"alice@example.org"})
    monkeypatch.setenv("TOKENWARD_ALLOWLIST_FILE", "  ")
    assert EmailAllowlist.from_env().path is None


# ---- reloading -----------------------------------------------------------------------------------


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every file the allowlist module opens."""
    seen: list[str] = []

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(os.fspath(file))
        return open(file, *args, **kwargs)

    monkeypatch.setattr(allowlist_module, "open", counting_open, raising=False)
    return seen


def test_unchanged_file_is_not_read_again(tmp_path: Path, opens: list[str]) -> None:
    path = tmp_path / "users.txt"
    write(path, "alice@example.org\n")
    allowlist = EmailAllowlist(path)
    for _ in range(50):
        assert allowlist.allows("alice@example.org")
    assert opens == [str(path)]


def test_every_kind_of_change_is_picked_up(tmp_path: Path, opens: list[str]) -> None:
    path = tmp_path / "users.txt"
    allowlist = EmailAllowlist(path)
    assert not allowlist.enabled  # absent

    write(path, "alice@example.org\n")  # created
    assert allowlist.entries() == {"alice@example.org"}

    write(path, "alice@example.org\nbob@example.org\n")  # grown in place
    assert allowlist.entries() == {"alice@example.org", "bob@example.org"}

    write(path, "carol@example.org\ndan@example.org\n")  # rewritten, same size
    bump_mtime(path)
    assert allowlist.entries() == {"carol@example.org", "dan@example.org"}

    replacement = tmp_path / "users.txt.new"  # replaced by rename (new inode)
    write(replacement, "erin@example.org\nfred@example.org\n")
    os.replace(replacement, path)
    assert allowlist.entries() == {"erin@example.org", "fred@example.org"}

    write(path, "# everyone again\n")  # comments only: off
    assert allowlist.entries() is None

    path.unlink()  # removed: off
    assert allowlist.entries() is None
    assert len(opens) == 5  # one read per change (the removal needs none)


# ---- over HTTP -----------------------------------------------------------------------------------


def make_app(auth: Authenticator) -> FastAPI:
    app = FastAPI(dependencies=[Depends(auth.app_dependency)])

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/me")
    async def me(user: Annotated[User, Depends(auth.user)]) -> dict[str, Any]:
        return {"uid": user.uid, "email": user.email}

    return app


@pytest.fixture
def allowlist_file(tmp_path: Path) -> Path:
    return tmp_path / "allowed_users.txt"


@pytest.fixture
def base_url(
    make_verifier: MakeVerifier, allowlist_file: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch.setenv("TOKENWARD_ALLOWLIST_FILE", str(allowlist_file))
    auth = Authenticator(make_verifier(), exempt_paths={"/health"})  # allowlist from the env
    assert auth.allowlist is not None and auth.allowlist.path == str(allowlist_file)
    with serve(make_app(auth)) as url:
        yield url


def me(url: str, token: str) -> requests.Response:
    return requests.get(f"{url}/me", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)


def test_allowlist_over_http_edited_while_running(
    base_url: str, allowlist_file: Path, dev_idp: DevIdP
) -> None:
    alice = dev_idp.mint(sub="alice", email="Alice@Example.org")
    bob = dev_idp.mint(sub="bob", email="bob@example.org")
    no_email = dev_idp.mint(sub="robot", email=None)

    # absent: off
    assert me(base_url, alice).status_code == 200
    assert me(base_url, no_email).status_code == 200

    # comments only: still off
    write(allowlist_file, "# to be filled in\n")
    assert me(base_url, bob).status_code == 200

    # on: only listed users
    write(allowlist_file, "# users\n alice@example.org \n")
    assert me(base_url, alice).json() == {"uid": "alice", "email": "Alice@Example.org"}
    denied = me(base_url, bob)
    assert denied.status_code == 403
    assert denied.json() == {"detail": "user_not_whitelisted"}
    assert me(base_url, no_email).json() == {"detail": "user_not_whitelisted"}
    # exempt paths are not subject to the allowlist
    assert requests.get(f"{base_url}/health", timeout=TIMEOUT).status_code == 200

    # edited while running: bob added, alice removed
    write(allowlist_file, "bob@example.org\n# alice@example.org\n")
    assert me(base_url, bob).status_code == 200
    assert me(base_url, alice).status_code == 403

    # emptied: off again
    write(allowlist_file, "")
    assert me(base_url, alice).status_code == 200


def test_unreadable_allowlist_over_http_lets_users_in(
    make_verifier: MakeVerifier, tmp_path: Path, dev_idp: DevIdP, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "not-a-file"
    directory.mkdir()
    auth = Authenticator(make_verifier(), allowlist=directory)
    with (
        caplog.at_level(logging.WARNING, logger="tokenward.allowlist"),
        serve(make_app(auth)) as url,
    ):
        assert me(url, dev_idp.mint(email="anyone@example.org")).status_code == 200
    assert any(r.name == "tokenward.allowlist" for r in caplog.records)


def test_invalid_token_is_401_before_the_allowlist(
    base_url: str, allowlist_file: Path, dev_idp: DevIdP
) -> None:
    write(allowlist_file, "alice@example.org\n")
    expired = dev_idp.mint(email="bob@example.org", expires_in=-3600)
    assert me(base_url, expired).status_code == 401
