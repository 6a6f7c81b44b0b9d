"""Per-workstation agents against a real Keycloak (issue 17's "done when"): two workstations
enrol with an initial access token, each gets tokens and calls a SmartEM-style backend that
allows `SmartEM_Agent_*`; one rotates its key while it calls the backend every 0.5 s for 20 s
with no failed call; the other is disabled and its next token request fails at once.

Nothing in tests/keycloak/*.json is needed: the fixture makes the initial access token and an
operator service account (realm-management `manage-clients` only) through the master admin's
Admin API, and deletes them, and the agents' clients, afterwards. Keycloak's default client
registration policies accept these registrations from 127.0.0.1 as they stand (measured on
26.7.3), so none is changed.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import tokenward as tw
from _uvicorn import serve
from tokenward import smartem
from tokenward.agents import (
    enrol,
    finish_rotation,
    list_agents,
    rotate_key,
    set_agent_enabled,
)
from tokenward.agents._files import read_env
from tokenward.requests import BearerAuth

from ._kc import HTTP_TIMEOUT, REALM, Keycloak, Recorder, pause, smartem_backend

pytestmark = pytest.mark.keycloak

#: The backend's pace and the length of the rotation run (the issue's figures).
PERIOD, RUN_SECONDS = 0.5, 20.0


@dataclass(frozen=True)
class Realm:
    keycloak: Keycloak
    operator: tw.TokenClient
    initial_access_token: str
    suffix: str


@pytest.fixture
def realm(keycloak: Keycloak) -> Iterator[Realm]:
    suffix = secrets.token_hex(3)
    operator_id, operator_secret = f"tokenward-agent-operator-{suffix}", secrets.token_urlsafe(24)
    with keycloak.admin() as admin:
        access = admin.post("/clients-initial-access", json={"expiration": 600, "count": 2})
        access.raise_for_status()
        created = admin.post(
            "/clients",
            json={
                "clientId": operator_id,
                "secret": operator_secret,
                "publicClient": False,
                "serviceAccountsEnabled": True,
                "standardFlowEnabled": False,
                "directAccessGrantsEnabled": False,
            },
        )
        created.raise_for_status()
        operator_uuid = admin.get("/clients", params={"clientId": operator_id}).json()[0]["id"]
        management = admin.get("/clients", params={"clientId": "realm-management"}).json()[0]
        account = admin.get(f"/clients/{operator_uuid}/service-account-user").json()["id"]
        role = admin.get(f"/clients/{management['id']}/roles/manage-clients").json()
        admin.post(
            f"/users/{account}/role-mappings/clients/{management['id']}", json=[role]
        ).raise_for_status()
        try:
            yield Realm(
                keycloak,
                tw.TokenClient(
                    keycloak.token_url, client_id=operator_id, client_secret=operator_secret
                ),
                access.json()["token"],
                suffix,
            )
        finally:
            for client in admin.get(
                "/clients", params={"clientId": f"_e2e_{suffix}", "search": "true"}
            ).json():
                admin.delete(f"/clients/{client['id']}")
            admin.delete(f"/clients/{operator_uuid}")
            admin.delete(f"/clients-initial-access/{access.json()['id']}")


@pytest.fixture
def backend(keycloak: Keycloak, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Recorder]]:
    monkeypatch.setenv("KEYCLOAK_URL", keycloak.url)
    monkeypatch.setenv("KEYCLOAK_REALM", REALM)
    monkeypatch.setenv("KEYCLOAK_ALLOWED_AZP", "SmartEM_User, SmartEM_Agent_*")
    for name in ("KEYCLOAK_VERIFY_ISS", "KEYCLOAK_AUDIENCE", "KEYCLOAK_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    smartem.reset_verifier()
    recorder = Recorder()
    with serve(smartem_backend(recorder)) as url:
        yield url, recorder
    smartem.reset_verifier()


def client_from(config: Path) -> tw.TokenClient:
    """The agent's TokenClient from the four keys of its config file."""
    env = read_env(config, "config")
    return tw.TokenClient(
        f"{env['KEYCLOAK_URL']}/realms/{env['KEYCLOAK_REALM']}/protocol/openid-connect/token",
        client_id=env["KEYCLOAK_CLIENT_ID"],
        private_key=Path(env["AGENT_PRIVATE_KEY_FILE"]).read_text(),
        timeout=HTTP_TIMEOUT,
    )


class Agent:
    """A workstation's agent loop: it re-reads its config before each call and makes a new
    TokenClient when the key file changed (how a restarted agent picks the new key up)."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.key_file = read_env(config, "config")["AGENT_PRIVATE_KEY_FILE"]
        self.client = client_from(config)
        self.session = requests.Session()
        self.session.auth = BearerAuth(self.client)
        self.switched = threading.Event()

    def call(self, url: str) -> requests.Response:
        key_file = read_env(self.config, "config")["AGENT_PRIVATE_KEY_FILE"]
        if key_file != self.key_file:
            self.key_file, self.client = key_file, client_from(self.config)
            self.session.auth = BearerAuth(self.client)
            switching = True
        else:
            switching = False
        # A fresh token for every call, so every call authenticates to Keycloak with the key.
        self.client.invalidate()
        answer = self.session.get(f"{url}/api/whoami", timeout=HTTP_TIMEOUT)
        if switching and answer.status_code == 200:
            self.switched.set()
        return answer


def test_two_workstations_rotate_and_revoke(
    realm: Realm, backend: tuple[str, Recorder], tmp_path: Path
) -> None:
    url, _ = backend
    kc = realm.keycloak
    ids = [f"SmartEM_Agent_e2e_{realm.suffix}_{name}" for name in ("ws01", "ws02")]
    rotating, revoked = (
        enrol(
            kc.url,
            tmp_path / name,
            realm=REALM,
            client_id=name,
            initial_access_token=realm.initial_access_token,
        )
        for name in ids
    )
    agents = [Agent(rotating.config_file), Agent(revoked.config_file)]
    for agent, client_id in zip(agents, ids, strict=True):
        answer = agent.call(url)
        assert answer.status_code == 200, answer.text
        assert answer.json()["azp"] == client_id
    old_client = agents[0].client

    # Rotation in the background (as an operator would run rotate-key, then --finish once the
    # agent has switched) while the agent calls the backend every 0.5 s for 20 s.
    timings: dict[str, float] = {}
    failures: list[BaseException] = []

    def rotate() -> None:
        try:
            started = time.monotonic()
            rotate_key(rotating.config_file)
            timings["stage"] = time.monotonic() - started
            assert agents[0].switched.wait(RUN_SECONDS / 2), "the agent never switched"
            started = time.monotonic()
            finish_rotation(rotating.config_file)
            timings["finish"] = time.monotonic() - started
        except BaseException as exc:  # noqa: BLE001 (re-raised by the test thread)
            failures.append(exc)

    statuses: list[int] = []
    rotation = threading.Thread(target=rotate)
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        if len(statuses) == 4:
            rotation.start()
        statuses.append(agents[0].call(url).status_code)
        pause(PERIOD)
    rotation.join(timeout=30)
    assert not failures, failures
    assert "finish" in timings, "the rotation did not finish within the run"
    assert len(statuses) >= 30
    assert statuses == [200] * len(statuses)
    # The old key is gone from the client: a token request signed with it is refused.
    with pytest.raises(tw.TokenRequestError) as old_refused:
        old_client.invalidate()
        old_client.get_token()
    assert old_refused.value.error == "invalid_client"

    # Revocation: the other workstation's next token request fails, at once, with no retry.
    set_agent_enabled(kc.url, realm.operator, ids[1], False, realm=REALM)
    disabled = agents[1].client
    disabled.invalidate()
    before = disabled.stats()["token_requests"]
    with pytest.raises(tw.TokenRequestError) as refused:
        disabled.get_token()
    assert refused.value.error in ("unauthorized_client", "invalid_client")
    assert disabled.stats()["token_requests"] == before + 1
    assert agents[0].call(url).status_code == 200
    listed = {
        a.client_id: a
        for a in list_agents(kc.url, realm.operator, realm=REALM, prefix="SmartEM_Agent_e2e_")
    }
    assert {cid: listed[cid].enabled for cid in ids} == {ids[0]: True, ids[1]: False}
    assert len(listed[ids[0]].kids) == 1 and listed[ids[0]].kids[0] != rotating.kid

    # The operator's way (the Admin API, manage-clients) rotates the same client too.
    again = rotate_key(rotating.config_file, operator=realm.operator)
    finish_rotation(rotating.config_file, operator=realm.operator)
    assert agents[0].call(url).status_code == 200
    kids = {
        a.client_id: a.kids
        for a in list_agents(kc.url, realm.operator, realm=REALM, prefix="SmartEM_Agent_e2e_")
    }
    assert kids[ids[0]] == (again.new_kid,)
    print(
        f"\nrotation against Keycloak: stage {timings['stage']:.2f} s, finish "
        f"{timings['finish']:.2f} s, {len(statuses)} calls, 0 failed"
    )
