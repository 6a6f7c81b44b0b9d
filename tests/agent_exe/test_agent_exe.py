"""The agent as a one-file PyInstaller executable (issue 14), run against the DevIdP and the
example services A and B under uvicorn, with one 401 forced on the way.

It needs `make agent-exe`'s build: `make test-agent-exe` builds the executable and runs this file
(marker `agent_exe`, which `make test-python` deselects). Without TOKENWARD_AGENT_EXE naming a
built executable the test fails; it never skips.

What it proves: PyInstaller collected the extension and everything it loads (the executable runs
from an empty directory with no Python environment), the token is fetched from the realm, the
backend is called, and the 401 is recovered by one retry with a fresh token.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _examples import example_environment, load_example
from _uvicorn import serve
from tokenward.testing import DevIdP

pytestmark = pytest.mark.agent_exe

AGENT_SECRET = "exe-agent-secret"


@pytest.fixture
def agent_exe() -> Path:
    value = os.environ.get("TOKENWARD_AGENT_EXE")
    if not value or not Path(value).is_file():
        pytest.fail(
            f"TOKENWARD_AGENT_EXE={value!r} is not a built executable: run `make test-agent-exe`",
            pytrace=False,
        )
    return Path(value)


def load(name: str) -> ModuleType:
    return load_example(name, "tokenward_exe")


class RefuseFirstToken:
    """ASGI wrapper: answers the first request that carries a bearer token with a 401 (as a
    backend does when it has stopped trusting a token), then passes everything to the app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.refused: list[str] = []
        self.passed: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            token = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
            if token and not self.refused:
                self.refused.append(token)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"www-authenticate", b'Bearer error="invalid_token"')],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
            if token:
                self.passed.append(token)
        await self.app(scope, receive, send)


@pytest.fixture
def realm(dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> DevIdP:
    example_environment(dev_idp, monkeypatch)
    dev_idp.add_client("exe-agent", secret=AGENT_SECRET, roles=["editor"])
    return dev_idp


@pytest.fixture
def backend(realm: DevIdP) -> Iterator[tuple[str, RefuseFirstToken]]:
    """Service B, then service A behind RefuseFirstToken; yields A's URL and the wrapper."""
    service_a, service_b = load("service_a"), load("service_b")
    with serve(service_b.create_app()) as b_url:
        guard = RefuseFirstToken(service_a.create_app(service_b_url=b_url))
        with serve(guard) as a_url:
            yield a_url, guard


def test_the_executable_fetches_a_token_calls_the_backend_and_recovers_a_401(
    agent_exe: Path, backend: tuple[str, RefuseFirstToken], realm: DevIdP, tmp_path: Path
) -> None:
    a_url, guard = backend
    config = tmp_path / "agent.env"
    config.write_text(
        f"KEYCLOAK_URL={realm.base_url}\nKEYCLOAK_REALM=dls\n"
        f"KEYCLOAK_CLIENT_ID=exe-agent\nKEYCLOAK_CLIENT_SECRET={AGENT_SECRET}\n"
    )
    # No Python environment at all: what runs is what PyInstaller collected.
    env = {"PATH": os.defpath, "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    if os.name == "nt":
        env["SYSTEMROOT"] = os.environ["SYSTEMROOT"]
    done = subprocess.run(
        [str(agent_exe), "--config", str(config), "--service-a", a_url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    a, b = result["relay"]["service_a"], result["relay"]["service_b"]
    assert a["azp"] == b["azp"] == "exe-agent"
    assert a["username"] == "service-account-exe-agent"
    assert result["created"] == {"title": "run 1", "owner": a["uid"]}
    assert result["documents"] == [result["created"]]
    # The forced 401: one refusal, then every call with one fresh token.
    assert len(guard.refused) == 1
    assert len(guard.passed) == 3 and len(set(guard.passed)) == 1
    assert guard.passed[0] != guard.refused[0]
    assert realm.hits["token"] == 2, "one token, then one more after the 401"
