"""The agent side of `tokenward.smartem` where only requests is installed, as the SmartEM agent
is packaged (a Windows .exe that must not carry FastAPI, Starlette and pydantic). The example
agent in that virtualenv: tests/test_examples.py."""

import json
import subprocess
from pathlib import Path

import tokenward as tw
from tokenward.testing import DevIdP

SECRET = "agent-secret-no-fastapi"

AGENT = """
import json, sys
import tokenward.smartem as smartem
from tokenward.smartem import KeycloakClient, KeycloakConfig, load_keycloak_config
from tokenward.requests import BearerAuth

config = load_keycloak_config(sys.argv[1])
with KeycloakClient(config, timeout=5.0) as kc:
    token = kc.get_token()
    BearerAuth(kc)
try:
    smartem.verify_token
    backend = "imported"
except ImportError as exc:
    backend = str(exc)
heavy = sorted(m for m in ("fastapi", "starlette", "pydantic") if m in sys.modules)
print(json.dumps({"token": token, "backend": backend, "heavy": heavy}))
"""


def run(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_venv_has_no_fastapi(agent_python: Path) -> None:
    for module in ("fastapi", "starlette", "pydantic", "uvicorn"):
        done = run(agent_python, "-c", f"import {module}")
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, module
    assert run(agent_python, "-c", "import requests, tokenward").returncode == 0


def test_the_agent_names_need_only_requests(
    agent_python: Path, dev_idp: DevIdP, tmp_path: Path
) -> None:
    dev_idp.add_client("SmartEM_Agent", secret=SECRET)
    config = tmp_path / "agent.env"
    config.write_text(
        f'KEYCLOAK_URL="{dev_idp.base_url}"\nKEYCLOAK_REALM=dls\n'
        f"KEYCLOAK_CLIENT_ID=SmartEM_Agent\nKEYCLOAK_CLIENT_SECRET={SECRET}\n",
        encoding="utf-8",
    )
    done = run(agent_python, "-c", AGENT, str(config))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["heavy"] == []
    assert "needs FastAPI" in result["backend"] and "fastapi" in result["backend"]
    claims = tw.Verifier(dev_idp.issuer, http_timeout=2.0).verify(result["token"])
    assert claims["azp"] == "SmartEM_Agent"
    assert dev_idp.hits["token"] == 1
