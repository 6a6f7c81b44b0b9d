"""SmartEM's backend (tokenward.smartem.verify_token app-wide, configured from the environment)
on uvicorn, called by the agent with a requests Session and tokenward.requests.BearerAuth."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import tokenward as tw
from _uvicorn import serve
from tokenward import smartem
from tokenward.requests import BearerAuth

from ._kc import AGENT_ID, AGENT_SECRET, HTTP_TIMEOUT, REALM, Keycloak, Recorder, smartem_backend

pytestmark = pytest.mark.keycloak


@pytest.fixture
def smartem_env(keycloak: Keycloak, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """SmartEM's environment for `keycloak`; smartem reads it at the first request after
    `reset_verifier()`. Tests set KEYCLOAK_ALLOWED_AZP themselves."""
    monkeypatch.setenv("KEYCLOAK_URL", keycloak.url)
    monkeypatch.setenv("KEYCLOAK_REALM", REALM)
    for name in ("KEYCLOAK_VERIFY_ISS", "KEYCLOAK_AUDIENCE", "KEYCLOAK_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    smartem.reset_verifier()
    yield
    smartem.reset_verifier()


def agent(keycloak: Keycloak) -> tuple[requests.Session, tw.TokenClient]:
    client = tw.TokenClient(keycloak.token_url, client_id=AGENT_ID, client_secret=AGENT_SECRET)
    session = requests.Session()
    session.auth = BearerAuth(client)
    return session, client


def test_the_agent_is_served(
    keycloak: Keycloak, smartem_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYCLOAK_ALLOWED_AZP", f"SmartEM_User, {AGENT_ID}")
    recorder = Recorder()
    session, client = agent(keycloak)
    with serve(smartem_backend(recorder)) as url, session:
        answers = [session.get(f"{url}/api/whoami", timeout=HTTP_TIMEOUT) for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5, answers[-1].text
        assert {a.json()["azp"] for a in answers} == {AGENT_ID}
        assert {a.json()["preferred_username"] for a in answers} == {
            f"service-account-{AGENT_ID.lower()}"
        }
        assert all(not a.history for a in answers)  # no 401 was retried
        # Exempt and unauthenticated paths keep SmartEM's answers.
        assert requests.get(f"{url}/health", timeout=HTTP_TIMEOUT).status_code == 200
        missing = requests.get(f"{url}/api/whoami", timeout=HTTP_TIMEOUT)
        assert missing.status_code == 401
        assert missing.json() == {"detail": "Missing or malformed Authorization header"}
        assert missing.headers["WWW-Authenticate"] == "Bearer"
    token = client.get_token()
    assert [s.status for s in recorder.snapshot()] == [200] * 5 + [200, 401]
    assert {s.token for s in recorder.snapshot()[:5]} == {token}
    assert client.stats()["token_requests"] == 1


def test_an_agent_outside_the_allowed_azp_is_refused(
    keycloak: Keycloak, smartem_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second configuration: KEYCLOAK_ALLOWED_AZP names only the user client."""
    monkeypatch.setenv("KEYCLOAK_ALLOWED_AZP", "SmartEM_User")
    recorder = Recorder()
    session, client = agent(keycloak)
    with serve(smartem_backend(recorder)) as url, session:
        answer = session.get(f"{url}/api/whoami", timeout=HTTP_TIMEOUT)
    assert answer.status_code == 401
    assert answer.json() == {"detail": "Token azp not permitted"}
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    # BearerAuth took the 401 for a stale token: one retry with a fresh token, then gave up.
    assert [h.status_code for h in answer.history] == [401]
    assert [s.status for s in recorder.snapshot()] == [401, 401]
    assert client.stats()["token_requests"] == 2
