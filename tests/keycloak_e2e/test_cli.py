"""The installed `tokenward` console script against a real Keycloak: a client-credentials token
with the secret from the environment, verified with `tokenward verify`, and the realm's keys
listed by `tokenward jwks` (Keycloak's encryption key skipped, as the verifier skips it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._kc import AGENT_ID, AGENT_SECRET, REALM, Keycloak

pytestmark = pytest.mark.keycloak

TOKENWARD = Path(sys.executable).parent / "tokenward"


def tokenward(keycloak: Keycloak, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KEYCLOAK_", "AGENT_"))}
    base.update(KEYCLOAK_URL=keycloak.url, KEYCLOAK_REALM=REALM, **env)
    result = subprocess.run(
        [str(TOKENWARD), *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert AGENT_SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_token_then_verify_then_jwks(keycloak: Keycloak) -> None:
    got = tokenward(keycloak, "token", AGENT_CLIENT_ID=AGENT_ID, AGENT_CLIENT_SECRET=AGENT_SECRET)
    assert got.returncode == 0, got.stderr
    token = got.stdout.strip()
    verified = tokenward(keycloak, "verify", "--json", token)
    assert verified.returncode == 0, verified.stderr
    claims = json.loads(verified.stdout)["claims"]
    assert claims["azp"] == AGENT_ID and claims["iss"] == keycloak.issuer
    wrong = tokenward(keycloak, "verify", "--audience", "not-this-service", token)
    assert wrong.returncode == 1 and wrong.stdout.startswith("rejected: bad_audience")
    keys = json.loads(tokenward(keycloak, "jwks", "--json").stdout)
    assert keys["jwks_uri"] == keycloak.jwks_uri and keys["usable"] >= 1
    by_use = {k["use"]: k for k in keys["keys"]}
    assert by_use["sig"]["used"] and by_use["sig"]["size"] >= 2048
    assert by_use["enc"]["skipped"] == 'use is "enc"'
