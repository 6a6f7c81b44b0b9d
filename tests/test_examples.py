"""The examples: services A and B under uvicorn, driven by the agent script and by a user."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import requests
from _examples import EXAMPLES, example_environment, load_example
from _uvicorn import serve
from tokenward.testing import DevIdP

TIMEOUT = 10
AGENT_SECRET = "example-agent-secret"


def load(name: str) -> ModuleType:
    return load_example(name, "tokenward_example")


@pytest.fixture
def realm(dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> DevIdP:
    example_environment(dev_idp, monkeypatch)
    dev_idp.add_client("example-agent", secret=AGENT_SECRET, roles=["editor"])
    dev_idp.add_client("example-ui", secret="ui-secret")
    dev_idp.add_user("alice", password="pw", email="alice@example.org", roles=["viewer"])
    return dev_idp


@pytest.fixture
def services(realm: DevIdP) -> Iterator[str]:
    """Services B and A (configured from the environment); yields A's URL."""
    service_a, service_b = load("service_a"), load("service_b")
    with (
        serve(service_b.create_app()) as b_url,
        serve(service_a.create_app(service_b_url=b_url)) as a_url,
    ):
        yield a_url


def agent_env(realm: DevIdP, a_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYCLOAK_", "AGENT_"))}
    env.update(
        KEYCLOAK_URL=realm.base_url,
        KEYCLOAK_REALM="dls",
        AGENT_CLIENT_ID="example-agent",
        AGENT_CLIENT_SECRET=AGENT_SECRET,
        SERVICE_A_URL=a_url,
    )
    return env


def run_agent(
    args: list[str], env: dict[str, str], python: str | Path = sys.executable
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), str(EXAMPLES / "agent.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_agent_reaches_both_services_as_itself(services: str, realm: DevIdP) -> None:
    done = run_agent([], agent_env(realm, services))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    a, b = result["relay"]["service_a"], result["relay"]["service_b"]
    assert a["service"] == "a" and b["service"] == "b"
    assert a["uid"] == b["uid"] != ""
    assert a["azp"] == b["azp"] == "example-agent"
    assert a["username"] == b["username"] == "service-account-example-agent"
    assert result["created"] == {"title": "run 1", "owner": a["uid"]}
    assert result["documents"] == [result["created"]]
    assert realm.hits["token"] == 1, "one token for all the agent's calls"


def test_agent_runs_without_fastapi(
    services: str, realm: DevIdP, agent_python: Path, tmp_path: Path
) -> None:
    """The agent in a virtualenv with tokenward and requests and nothing of FastAPI (the
    services it calls run here), configured from the environment and from a SmartEM file."""
    env = agent_env(realm, services)
    done = run_agent([], env, agent_python)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["relay"]["service_a"]["azp"] == "example-agent"
    config = tmp_path / "agent.env"
    config.write_text(
        f'KEYCLOAK_URL="{realm.base_url}"\nKEYCLOAK_REALM=dls\n'
        f"KEYCLOAK_CLIENT_ID=example-agent\nKEYCLOAK_CLIENT_SECRET='{AGENT_SECRET}'\n"
    )
    env = {k: v for k, v in env.items() if not k.startswith(("KEYCLOAK_", "AGENT_"))}
    done = run_agent(["--config", str(config)], env, agent_python)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["created"]["title"] == "run 1"
    assert realm.hits["token"] == 2


def test_agent_with_a_smartem_config_file(services: str, realm: DevIdP, tmp_path: Path) -> None:
    config = tmp_path / "agent.env"
    config.write_text(
        f"# agent\nKEYCLOAK_URL={realm.base_url}\nKEYCLOAK_REALM=dls\n"
        f"KEYCLOAK_CLIENT_ID=example-agent\nKEYCLOAK_CLIENT_SECRET={AGENT_SECRET}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYCLOAK_", "AGENT_"))}
    done = run_agent(["--config", str(config), "--service-a", services], env)
    assert done.returncode == 0, done.stderr
    relay = json.loads(done.stdout)["relay"]
    assert relay["service_a"]["uid"] == relay["service_b"]["uid"]


def test_agent_reports_a_failing_idp(services: str, realm: DevIdP) -> None:
    realm.set_fault("token", "500")
    done = run_agent([], agent_env(realm, services))
    assert done.returncode == 1
    assert "agent:" in done.stderr
    assert AGENT_SECRET not in done.stderr


def test_a_user_token_is_forwarded_and_permissions_apply(services: str, realm: DevIdP) -> None:
    grant = requests.post(
        realm.token_url,
        data={
            "grant_type": "password",
            "client_id": "example-ui",
            "client_secret": "ui-secret",
            "username": "alice",
            "password": "pw",
        },
        timeout=TIMEOUT,
    )
    grant.raise_for_status()
    headers = {"Authorization": f"Bearer {grant.json()['access_token']}"}
    relay = requests.get(f"{services}/relay", headers=headers, timeout=TIMEOUT)
    assert relay.status_code == 200, relay.text
    a, b = relay.json()["service_a"], relay.json()["service_b"]
    assert a["username"] == b["username"] == "alice"
    assert a["email"] == b["email"] == "alice@example.org"
    assert a["roles"] == b["roles"] == ["viewer"]
    # viewer: may read, may not create
    assert requests.get(f"{services}/documents", headers=headers, timeout=TIMEOUT).json() == []
    denied = requests.post(
        f"{services}/documents", json={"title": "x"}, headers=headers, timeout=TIMEOUT
    )
    assert denied.status_code == 403
    # no token: 401; health: open
    assert requests.get(f"{services}/relay", timeout=TIMEOUT).status_code == 401
    assert requests.get(f"{services}/health", timeout=TIMEOUT).json() == {"status": "ok"}


def test_service_b_middleware_guards_every_route(realm: DevIdP) -> None:
    with serve(load("service_b").create_app()) as b_url:
        assert requests.get(f"{b_url}/health", timeout=TIMEOUT).json() == {"status": "ok"}
        for path in ("/whoami", "/no-such-route", "/docs"):
            response = requests.get(f"{b_url}{path}", timeout=TIMEOUT)
            assert response.status_code == 401, path
            assert response.headers["WWW-Authenticate"] == "Bearer"
        token = realm.mint(sub="b-user", preferred_username="bea")
        whoami = requests.get(
            f"{b_url}/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )
        assert whoami.status_code == 200, whoami.text
        assert whoami.json()["username"] == "bea"
