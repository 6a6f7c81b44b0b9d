"""Example agent: an unattended client that calls service A with a client-credentials token.

It fetches its own access token (OAuth2 client-credentials grant), keeps it fresh, and lets
`tokenward.requests.BearerAuth` add it to every request (and retry once with a new token
after a 401). It asks service A who it is (A asks service B in turn, forwarding the token),
creates a document, lists the documents, and prints what it got as JSON.

Configuration, either
- a SmartEM-style file: `python examples/agent.py --config agent.env` with KEYCLOAK_URL,
  KEYCLOAK_REALM, KEYCLOAK_CLIENT_ID and KEYCLOAK_CLIENT_SECRET lines, or
- the environment: KEYCLOAK_URL, KEYCLOAK_REALM, AGENT_CLIENT_ID / KEYCLOAK_CLIENT_ID,
  AGENT_CLIENT_SECRET / KEYCLOAK_CLIENT_SECRET (`tokenward.TokenClient.from_env()`);
and SERVICE_A_URL (or --service-a; default http://127.0.0.1:8000).

Exit status: 0 on success, 1 when a call fails (the error is printed to stderr).
"""

import argparse
import json
import os
import sys
from typing import Any

import requests
import tokenward
from tokenward.requests import BearerAuth
from tokenward.smartem import KeycloakClient, load_keycloak_config


def token_client(config_path: str | None) -> Any:
    """The token source: a SmartEM KeycloakClient from a file, or a TokenClient from the env."""
    if config_path:
        return KeycloakClient(load_keycloak_config(config_path))
    return tokenward.TokenClient.from_env()


def run(service_a: str, config_path: str | None) -> dict[str, Any]:
    with requests.Session() as session:
        session.auth = BearerAuth(token_client(config_path))
        relay = session.get(f"{service_a}/relay", timeout=10)
        relay.raise_for_status()
        created = session.post(f"{service_a}/documents", json={"title": "run 1"}, timeout=10)
        created.raise_for_status()
        listed = session.get(f"{service_a}/documents", timeout=10)
        listed.raise_for_status()
    return {"relay": relay.json(), "created": created.json(), "documents": listed.json()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a KEY=VALUE file with the KEYCLOAK_* settings")
    parser.add_argument(
        "--service-a",
        default=os.environ.get("SERVICE_A_URL", "http://127.0.0.1:8000"),
        help="service A's base URL (default: $SERVICE_A_URL)",
    )
    args = parser.parse_args(argv)
    try:
        result = run(args.service_a.rstrip("/"), args.config)
    except (requests.RequestException, tokenward.TokenwardError, OSError, ValueError) as exc:
        print(f"agent: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
