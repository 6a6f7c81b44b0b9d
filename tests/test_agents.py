"""Per-workstation agents (`tokenward.agents` and `tokenward agent ...`) against a DevIdP over
real HTTP: enrolment by client registration and by an operator, key rotation with no refused
token request, listing, disabling and deleting; the files' contents and permissions, and no
secret in a log line, an error or another file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tokenward as tw
from tokenward.agents import (
    AgentError,
    delete_agent,
    enrol,
    finish_rotation,
    list_agents,
    rotate_key,
    set_agent_enabled,
)
from tokenward.agents._files import read_env
from tokenward.testing import DevIdP

TOKENWARD = Path(sys.executable).parent / "tokenward"
OPS_SECRET = "ops-secret-7c1d"


@pytest.fixture
def idp() -> Iterator[DevIdP]:
    with DevIdP(realm="dls") as idp:
        idp.add_client(
            "agent-operator",
            secret=OPS_SECRET,
            client_roles={"realm-management": ["view-clients", "manage-clients"]},
        )
        yield idp


@pytest.fixture
def operator(idp: DevIdP) -> tw.TokenClient:
    return tw.TokenClient(client_id="agent-operator", client_secret=OPS_SECRET, issuer=idp.issuer)


def client_from(config: Path) -> tw.TokenClient:
    """The agent's TokenClient, made from the four keys of its config file."""
    env = read_env(config, "config")
    key = Path(env["AGENT_PRIVATE_KEY_FILE"]).read_text()
    return tw.TokenClient(
        client_id=env["KEYCLOAK_CLIENT_ID"],
        private_key=key,
        issuer=f"{env['KEYCLOAK_URL']}/realms/{env['KEYCLOAK_REALM']}",
        timeout=5.0,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def verifier(idp: DevIdP) -> tw.Verifier:
    return tw.Verifier(idp.issuer, allowed_azp=["SmartEM_User", "SmartEM_Agent_*"])


def test_enrol_by_registration_writes_owner_only_files_and_the_agent_gets_tokens(
    idp: DevIdP, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    iat = idp.create_initial_access_token(expiration=600, count=1)
    done = enrol(idp.base_url, tmp_path, client_id="SmartEM_Agent_ws01", initial_access_token=iat)
    assert done.client_id == "SmartEM_Agent_ws01"
    assert done.fingerprint == done.kid and len(done.kid) == 43  # base64url SHA-256
    assert done.alg == "ES256"
    config = read_env(done.config_file, "config")
    assert config == {
        "KEYCLOAK_URL": idp.base_url,
        "KEYCLOAK_REALM": "dls",
        "KEYCLOAK_CLIENT_ID": "SmartEM_Agent_ws01",
        "AGENT_PRIVATE_KEY_FILE": str(done.key_file.resolve()),
    }
    assert done.registration_file is not None
    for path in (done.key_file, done.config_file, done.registration_file):
        assert mode(path) == 0o600, path
    pem = done.key_file.read_text()
    assert "PRIVATE KEY" in pem
    rat = read_env(done.registration_file, "r")["REGISTRATION_ACCESS_TOKEN"]
    # Each secret lives in its own file only, and never in a log line or a repr.
    assert "PRIVATE KEY" not in done.config_file.read_text() + done.registration_file.read_text()
    assert rat not in done.config_file.read_text() + pem
    for secret in (iat, rat, pem.splitlines()[1]):
        assert secret not in caplog.text
        assert secret not in repr(done) and secret not in json.dumps(done.summary())
    token = client_from(done.config_file).get_token()
    assert verifier(idp).verify(token)["azp"] == "SmartEM_Agent_ws01"


@pytest.mark.parametrize(("key_type", "alg"), [("rsa-2048", "RS256"), ("ed25519", "EdDSA")])
def test_enrol_with_another_key_type(idp: DevIdP, tmp_path: Path, key_type: str, alg: str) -> None:
    iat = idp.create_initial_access_token()
    done = enrol(
        idp.base_url,
        tmp_path,
        client_id="SmartEM_Agent_k",
        key_type=key_type,
        initial_access_token=iat,
    )
    assert done.alg == alg
    assert client_from(done.config_file).get_token()


def test_enrol_refuses_to_overwrite_and_a_refused_registration_says_why(
    idp: DevIdP, tmp_path: Path
) -> None:
    iat = idp.create_initial_access_token(count=1)
    done = enrol(idp.base_url, tmp_path, client_id="SmartEM_Agent_ws01", initial_access_token=iat)
    before = done.key_file.read_text()
    with pytest.raises(tw.ConfigError, match="refusing to overwrite"):
        enrol(
            idp.base_url,
            tmp_path,
            client_id="SmartEM_Agent_ws01",
            initial_access_token=idp.create_initial_access_token(),
        )
    assert done.key_file.read_text() == before
    with pytest.raises(AgentError) as spent:
        enrol(
            idp.base_url,
            tmp_path / "other",
            client_id="SmartEM_Agent_ws02",
            initial_access_token=iat,
        )
    assert spent.value.status == 401 and spent.value.error == "invalid_token"
    assert "No remaining count" in str(spent.value)
    assert iat not in str(spent.value)
    assert list((tmp_path / "other").iterdir()) == []  # the refused client's key is gone


def test_enrol_creates_no_files_without_a_way_to_register(idp: DevIdP, tmp_path: Path) -> None:
    with pytest.raises(tw.ConfigError, match="exactly one"):
        enrol(idp.base_url, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("by_operator", [False, True])
def test_rotation_keeps_the_running_client_working_until_finish(
    idp: DevIdP, tmp_path: Path, operator: tw.TokenClient, by_operator: bool
) -> None:
    ops = operator if by_operator else None
    iat = None if by_operator else idp.create_initial_access_token()
    done = enrol(
        idp.base_url,
        tmp_path,
        client_id="SmartEM_Agent_ws01",
        initial_access_token=iat,
        operator=ops,
    )
    running = client_from(done.config_file)
    assert running.get_token()
    rat_before = read_env(done.registration_file, "r") if done.registration_file else None

    staged = rotate_key(done.config_file, operator=ops)
    assert staged.old_kid == done.kid and staged.new_kid != done.kid
    assert set(staged.registered_kids) == {done.kid, staged.new_kid}
    assert mode(staged.new_key_file) == 0o600 and mode(done.config_file) == 0o600
    assert read_env(done.config_file, "c")["AGENT_PRIVATE_KEY_FILE"] == str(
        staged.new_key_file.resolve()
    )
    if done.registration_file is not None:
        assert read_env(done.registration_file, "r") != rat_before  # Keycloak rotated it
        assert mode(done.registration_file) == 0o600
    # Both keys work while both are registered: the running client (old key) and a new one.
    running.invalidate()
    assert running.get_token()
    switched = client_from(done.config_file)
    assert switched.get_token()

    removed = finish_rotation(done.config_file, operator=ops)
    assert removed == (done.kid,)
    assert not done.key_file.exists()
    switched.invalidate()
    assert verifier(idp).verify(switched.get_token())["azp"] == "SmartEM_Agent_ws01"
    running.invalidate()
    with pytest.raises(tw.TokenRequestError) as refused:
        running.get_token()
    assert refused.value.error == "invalid_client"


def test_operators_list_disable_and_delete(
    idp: DevIdP, tmp_path: Path, operator: tw.TokenClient
) -> None:
    first = enrol(idp.base_url, tmp_path / "a", client_id="SmartEM_Agent_ws01", operator=operator)
    enrol(
        idp.base_url,
        tmp_path / "b",
        client_id="SmartEM_Agent_ws02",
        initial_access_token=idp.create_initial_access_token(),
    )
    idp.add_client("SmartEM_User")
    agents = list_agents(idp.base_url, operator)
    assert [(a.client_id, a.enabled) for a in agents] == [
        ("SmartEM_Agent_ws01", True),
        ("SmartEM_Agent_ws02", True),
    ]
    assert agents[0].kids == (first.kid,)
    one = client_from(first.config_file)
    assert one.get_token()
    set_agent_enabled(idp.base_url, operator, "SmartEM_Agent_ws01", False)
    assert [a.enabled for a in list_agents(idp.base_url, operator)] == [False, True]
    one.invalidate()
    before = idp.hits["token"]
    with pytest.raises(tw.TokenRequestError) as refused:
        one.get_token()
    assert refused.value.error == "invalid_client"
    assert idp.hits["token"] == before + 1
    delete_agent(idp.base_url, operator, "SmartEM_Agent_ws02")
    assert [a.client_id for a in list_agents(idp.base_url, operator)] == ["SmartEM_Agent_ws01"]
    with pytest.raises(AgentError) as missing:
        delete_agent(idp.base_url, operator, "SmartEM_Agent_ws02")
    assert missing.value.status == 404


def test_a_viewer_can_list_but_not_disable(idp: DevIdP, tmp_path: Path) -> None:
    idp.add_client("viewer", secret="v", client_roles={"realm-management": ["view-clients"]})
    viewer = tw.TokenClient(client_id="viewer", client_secret="v", issuer=idp.issuer)
    enrol(
        idp.base_url,
        tmp_path,
        client_id="SmartEM_Agent_ws01",
        initial_access_token=idp.create_initial_access_token(),
    )
    assert [a.client_id for a in list_agents(idp.base_url, viewer)] == ["SmartEM_Agent_ws01"]
    with pytest.raises(AgentError) as refused:
        set_agent_enabled(idp.base_url, viewer, "SmartEM_Agent_ws01", False)
    assert refused.value.status == 403


# ---- the command line ----------------------------------------------------------------------


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KEYCLOAK_", "AGENT_"))}
    return subprocess.run(
        [str(TOKENWARD), *args],
        env={**base, **(env or {})},
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_enrol_rotate_list_disable_delete(idp: DevIdP, tmp_path: Path) -> None:
    iat = idp.create_initial_access_token(count=1)
    where = ["--url", idp.base_url, "--realm", "dls"]
    enrolled = run(
        "agent",
        "enrol",
        *where,
        "--dir",
        str(tmp_path),
        "--client-id",
        "SmartEM_Agent_ws01",
        "--json",
        env={"TOKENWARD_INITIAL_ACCESS_TOKEN": iat},
    )
    assert enrolled.returncode == 0, enrolled.stderr
    summary = json.loads(enrolled.stdout)
    assert summary["client_id"] == "SmartEM_Agent_ws01"
    assert summary["fingerprint"] == summary["kid"]
    config = Path(summary["config_file"])
    rat = read_env(Path(summary["registration_file"]), "r")["REGISTRATION_ACCESS_TOKEN"]

    again = run(
        "agent",
        "enrol",
        *where,
        "--dir",
        str(tmp_path / "x"),
        "--client-id",
        "other",
        env={"TOKENWARD_INITIAL_ACCESS_TOKEN": iat},
    )
    assert again.returncode == 1
    assert "No remaining count" in again.stderr

    rotated = run("agent", "rotate-key", "--config", str(config), "--json")
    assert rotated.returncode == 0, rotated.stderr
    staged = json.loads(rotated.stdout)
    assert staged["old_kid"] == summary["kid"]
    finished = run("agent", "rotate-key", "--config", str(config), "--finish", "--json")
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["removed_kids"] == [summary["kid"]]
    assert client_from(config).get_token()

    ops = {
        "TOKENWARD_OPERATOR_CLIENT_ID": "agent-operator",
        "TOKENWARD_OPERATOR_SECRET": OPS_SECRET,
    }
    listed = run("agent", "list", *where, "--json", env=ops)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [
        {
            "client_id": "SmartEM_Agent_ws01",
            "enabled": True,
            "id": json.loads(listed.stdout)[0]["id"],
            "kids": [staged["new_kid"]],
        }
    ]
    assert run("agent", "disable", "SmartEM_Agent_ws01", *where, env=ops).returncode == 0
    assert json.loads(run("agent", "list", *where, "--json", env=ops).stdout)[0]["enabled"] is False
    assert run("agent", "delete", "SmartEM_Agent_ws01", *where, env=ops).returncode == 0
    assert json.loads(run("agent", "list", *where, "--json", env=ops).stdout) == []
    missing = run("agent", "delete", "SmartEM_Agent_ws01", *where, env=ops)
    assert missing.returncode == 1
    no_operator = run("agent", "list", *where)
    assert no_operator.returncode == 2
    no_token = run("agent", "enrol", *where, "--dir", str(tmp_path / "y"))
    assert no_token.returncode == 2
    assert "no initial access token" in no_token.stderr
    for result in (enrolled, again, rotated, finished, listed, missing):
        for secret in (iat, rat, OPS_SECRET):
            assert secret not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
