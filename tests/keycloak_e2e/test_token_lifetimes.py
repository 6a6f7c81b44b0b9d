"""The agent keeps calling the backend across three lifetimes of 15-second tokens: no request
fails, and tokens are fetched once per lifetime (give or take), never once per request. With a
refresh margin (2 s) below a third of the lifetime (5 s), every new token after the first is
fetched ahead, in the background, so no call waits for the token endpoint.

The wait is inherent: what is under test is the real expiry of Keycloak's tokens. The backend
verifies with leeway 0, so a token used after its `exp` would be seen as a 401 by the backend
(even though BearerAuth would hide it from the agent by retrying)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator

import pytest
import requests
import tokenward as tw
from _helpers import claims_of
from _uvicorn import serve
from tokenward import smartem
from tokenward.requests import BearerAuth

from ._kc import (
    HTTP_TIMEOUT,
    REALM,
    SHORT_AGENT_ID,
    SHORT_AGENT_SECRET,
    SHORT_TOKEN_LIFETIME,
    Keycloak,
    Recorder,
    pause,
    smartem_backend,
)

pytestmark = pytest.mark.keycloak

logger = logging.getLogger("tokenward.tests.keycloak")

LIFETIMES = 3
REFRESH_MARGIN = 2
#: A token is replaced once in its last third: about every 10 s.
REPLACED_AFTER = SHORT_TOKEN_LIFETIME * 2 / 3


@pytest.fixture
def strict_backend(
    keycloak: Keycloak, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Recorder]]:
    """SmartEM's backend for the short-lived agent, verifying with leeway 0; yields its URL
    and what it saw."""
    monkeypatch.setenv("KEYCLOAK_URL", keycloak.url)
    monkeypatch.setenv("KEYCLOAK_REALM", REALM)
    monkeypatch.setenv("KEYCLOAK_ALLOWED_AZP", SHORT_AGENT_ID)
    smartem.set_verifier(tw.Verifier.from_env(leeway=0))
    recorder = Recorder()
    try:
        with serve(smartem_backend(recorder)) as url:
            yield url, recorder
    finally:
        smartem.reset_verifier()


def test_three_token_lifetimes_without_a_failure(
    keycloak: Keycloak, strict_backend: tuple[str, Recorder]
) -> None:
    url, recorder = strict_backend
    client = tw.TokenClient(
        keycloak.token_url,
        client_id=SHORT_AGENT_ID,
        client_secret=SHORT_AGENT_SECRET,
        refresh_margin=REFRESH_MARGIN,
    )
    first = claims_of(client.get_token())
    assert first["exp"] - first["iat"] == SHORT_TOKEN_LIFETIME
    answers: list[requests.Response] = []
    with requests.Session() as session:
        session.auth = BearerAuth(client)
        started = time.monotonic()
        deadline = started + LIFETIMES * SHORT_TOKEN_LIFETIME + 1
        while time.monotonic() < deadline:
            answers.append(session.get(f"{url}/api/whoami", timeout=HTTP_TIMEOUT))
            pause(0.5)
        elapsed = time.monotonic() - started

    failed = [(a.status_code, a.text) for a in answers if a.status_code != 200]
    assert failed == []
    assert all(not a.history for a in answers)  # nothing was retried after a 401
    seen = recorder.snapshot()
    assert len(seen) == len(answers)
    assert {s.status for s in seen} == {200}  # the backend refused nothing, not even once
    jtis = [claims_of(s.token)["jti"] for s in seen if s.token]
    distinct = list(dict.fromkeys(jtis))
    assert distinct[0] == first["jti"]
    # Each token was used for one stretch, then replaced for good.
    assert [j for i, j in enumerate(jtis) if i == 0 or jtis[i - 1] != j] == distinct
    # No token covers more than its lifetime, and a token is replaced only in its last third:
    # about elapsed / 10 s of them, never one per request.
    assert math.ceil(elapsed / SHORT_TOKEN_LIFETIME) <= len(distinct)
    assert len(distinct) <= elapsed // REPLACED_AFTER + 2
    assert len(answers) >= 4 * len(distinct)
    stats = client.stats()
    logger.info(
        "%d requests in %.1f s, %d distinct tokens, client stats %s",
        len(answers),
        elapsed,
        len(distinct),
        stats,
    )
    assert stats["token_errors"] == 0
    # Every token fetched was used, but perhaps the last (fetched ahead, not yet needed).
    assert len(distinct) <= stats["token_requests"] <= len(distinct) + 1
    # Every replacement was fetched ahead, in the background.
    assert stats["refreshes_ahead"] >= len(distinct) - 1
