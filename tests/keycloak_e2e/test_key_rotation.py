"""Key rotation through Keycloak's Admin REST API while the agent keeps calling the backend.

1. A new `rsa-generated` key provider of priority 200 (the old one has 100): Keycloak signs new
   tokens with it at once; both keys are published.
2. The agent moves to a new token: the backend meets an unknown kid and refetches the JWKS.
   Old-kid tokens still verify (the old key is still published).
3. The old provider is disabled: its key leaves the JWKS. The backend's key set (TTL 2 s:
   Keycloak sends `Cache-Control: no-cache`, so `jwks_ttl` applies) drops it at its next
   refresh, and old-kid tokens are refused from then on ("Cannot resolve signing key"), also
   ones the backend verified (and cached) before.
Throughout, every request of the agent succeeds at the first attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import tokenward as tw
from _helpers import expect_invalid, header_of
from _uvicorn import serve
from tokenward import smartem
from tokenward.requests import BearerAuth

from ._kc import (
    AGENT_ID,
    AGENT_SECRET,
    HTTP_TIMEOUT,
    REALM,
    Keycloak,
    Recorder,
    pause,
    smartem_backend,
    wait_until,
)

pytestmark = pytest.mark.keycloak

#: Bound on each wait for the rotation to show (it shows within a second or two).
WAIT = 30.0
KEY_PROVIDER = "org.keycloak.keys.KeyProvider"


class Agent(threading.Thread):
    """Calls the backend in a loop with a BearerAuth session until stopped."""

    def __init__(self, url: str, client: tw.TokenClient) -> None:
        super().__init__(name="agent-loop", daemon=True)
        self.url, self.client = url, client
        self.answers: list[requests.Response] = []
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with requests.Session() as session:
                session.auth = BearerAuth(self.client)
                while not self.stop_event.is_set():
                    answer = session.get(f"{self.url}/api/whoami", timeout=HTTP_TIMEOUT)
                    self.answers.append(answer)
                    pause(0.05)
        except Exception as exc:  # reported by the test, in finish()
            self.error = exc
            raise

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=WAIT)
        assert not self.is_alive(), "the agent loop did not stop"
        assert self.error is None, f"the agent loop failed: {self.error!r}"


@pytest.fixture
def backend(
    keycloak: Keycloak, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Recorder, tw.Verifier]]:
    """SmartEM's backend with the verifier under test: from the environment, with a 2 s key-set
    TTL and no cooldown between unknown-kid refetches."""
    monkeypatch.setenv("KEYCLOAK_URL", keycloak.url)
    monkeypatch.setenv("KEYCLOAK_REALM", REALM)
    monkeypatch.setenv("KEYCLOAK_ALLOWED_AZP", AGENT_ID)
    verifier = tw.Verifier.from_env(jwks_ttl=2, jwks_cooldown=0)
    smartem.set_verifier(verifier)
    recorder = Recorder()
    try:
        with serve(smartem_backend(recorder)) as url:
            yield url, recorder, verifier
    finally:
        smartem.reset_verifier()


def active_rs256(admin: Any) -> dict[str, Any]:
    """The key Keycloak signs RS256 tokens with now (from `GET .../keys`)."""
    keys = admin.get("/keys").raise_for_status().json()
    kid = keys["active"]["RS256"]
    return next(k for k in keys["keys"] if k["kid"] == kid)


def call(url: str, token: str) -> requests.Response:
    return requests.get(
        f"{url}/api/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT
    )


def test_rotation(keycloak: Keycloak, backend: tuple[str, Recorder, tw.Verifier]) -> None:
    url, recorder, verifier = backend

    def accepted_with(kid: str) -> int:
        return sum(1 for s in recorder.snapshot() if s.status == 200 and s.kid == kid)

    def fresh_token() -> str:
        return tw.TokenClient(
            keycloak.token_url, client_id=AGENT_ID, client_secret=AGENT_SECRET
        ).get_token()

    old_token = fresh_token()
    old_kid = header_of(old_token)["kid"]
    assert call(url, old_token).status_code == 200  # verified, and now in the backend's cache
    agent = Agent(
        url, tw.TokenClient(keycloak.token_url, client_id=AGENT_ID, client_secret=AGENT_SECRET)
    )
    agent.start()
    try:
        with keycloak.admin() as admin:
            old_key = active_rs256(admin)
            assert old_key["kid"] == old_kid
            wait_until(lambda: accepted_with(old_kid) >= 5, WAIT, "the agent's first calls")

            # 1. A new key of higher priority.
            realm_id = admin.get("").raise_for_status().json()["id"]
            created = admin.post(
                "/components",
                json={
                    "name": "rotated-rsa",
                    "providerId": "rsa-generated",
                    "providerType": KEY_PROVIDER,
                    "parentId": realm_id,
                    "config": {"priority": ["200"]},
                },
            )
            assert created.status_code == 201, created.text
            new_kid = active_rs256(admin)["kid"]
            assert new_kid != old_kid
            assert {old_kid, new_kid} <= keycloak.published_kids()
            new_token = fresh_token()
            assert header_of(new_token)["kid"] == new_kid

            # 2. The agent's next token carries the new kid; old-kid tokens still pass.
            agent.client.invalidate()
            wait_until(lambda: accepted_with(new_kid) >= 5, WAIT, "new-kid calls to succeed")
            assert call(url, old_token).status_code == 200
            assert call(url, new_token).status_code == 200

            # 3. The old key is disabled and leaves the JWKS.
            component = admin.get(f"/components/{old_key['providerId']}").raise_for_status()
            disabled = component.json()
            disabled["config"]["enabled"] = ["false"]
            put = admin.put(f"/components/{old_key['providerId']}", json=disabled)
            assert put.status_code == 204, put.text
            published = keycloak.published_kids()
            assert new_kid in published and old_kid not in published

            refused: list[requests.Response] = []

            def old_token_refused() -> bool:
                answer = call(url, old_token)
                if answer.status_code != 200:
                    refused.append(answer)
                return answer.status_code != 200

            wait_until(old_token_refused, WAIT, "the backend to drop the old key")
            assert refused[0].status_code == 401
            assert refused[0].json() == {"detail": "Cannot resolve signing key"}
            # The old token stays refused; new-kid tokens keep passing.
            assert call(url, old_token).status_code == 401
            assert call(url, new_token).status_code == 200
            after = accepted_with(new_kid)
            wait_until(lambda: accepted_with(new_kid) >= after + 5, WAIT, "more agent calls")
    finally:
        agent.finish()

    # Every call of the agent succeeded at the first attempt.
    assert [a.status_code for a in agent.answers if a.status_code != 200] == []
    assert all(not a.history for a in agent.answers)
    agent_kids = [header_of(a.request.headers["Authorization"][7:])["kid"] for a in agent.answers]
    assert agent_kids[0] == old_kid and agent_kids[-1] == new_kid
    # Old-kid tokens: refused by the verifier under test and by a fresh one.
    expect_invalid(verifier, old_token, "unknown_kid")
    fresh = tw.Verifier(keycloak.issuer)
    expect_invalid(fresh, old_token, "unknown_kid")
    assert fresh.verify(new_token)["azp"] == AGENT_ID
