"""The installed `tokenward` console script, run as a subprocess against a DevIdP (and a
FastAPI service) over real HTTP: every subcommand, its exit codes, `--json`, and that no secret
is ever on the command line or in the output."""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import tokenward as tw
from _uvicorn import serve
from fastapi import Depends, FastAPI
from tokenward.fastapi import Authenticator
from tokenward.testing import DevIdP

TOKENWARD = Path(sys.executable).parent / "tokenward"
SECRET = "cli-test-secret-5b0f"
PASSWORD = "cli-test-password-e81"


@pytest.fixture
def idp() -> Iterator[DevIdP]:
    with DevIdP(realm="dls") as idp:
        idp.add_client("ops-agent", SECRET, roles=["agent"])
        idp.add_client("SmartEM_User")
        idp.add_user(
            "alice",
            PASSWORD,
            roles=["reader"],
            groups=["/facility"],
            client_roles={"smartem": ["admin"]},
        )
        yield idp


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed console script with a clean KEYCLOAK_*/AGENT_* environment plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KEYCLOAK_", "AGENT_"))}
    for secret in (SECRET, PASSWORD):
        assert all(secret not in a for a in args), "a secret must never be an argument"
    result = subprocess.run(
        [str(TOKENWARD), *args],
        env={**base, **(env or {})},
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for secret in (SECRET, PASSWORD):
        assert secret not in result.stdout and secret not in result.stderr
    assert "Traceback" not in result.stderr
    return result


def keycloak_env(idp: DevIdP) -> dict[str, str]:
    return {"KEYCLOAK_URL": idp.base_url, "KEYCLOAK_REALM": "dls"}


def test_the_console_script_is_installed_and_python_m_is_the_same_program() -> None:
    assert TOKENWARD.is_file()
    help_text = run("--help").stdout
    for command in ("token", "inspect", "verify", "jwks", "call", "demo", "exit codes"):
        assert command in help_text
    via_m = subprocess.run(
        [sys.executable, "-m", "tokenward", "--help"], capture_output=True, text=True, check=False
    )
    assert via_m.returncode == 0 and via_m.stdout == help_text
    assert run("--version").stdout.strip() == f"tokenward {tw.__version__}"


def test_no_command_or_a_bad_option_is_a_usage_error() -> None:
    assert run().returncode == 2
    bad = run("verify", "--no-such-option")
    assert bad.returncode == 2 and "--no-such-option" in bad.stderr


def test_token_with_the_secret_from_the_environment(idp: DevIdP) -> None:
    env = {**keycloak_env(idp), "AGENT_CLIENT_ID": "ops-agent", "AGENT_CLIENT_SECRET": SECRET}
    result = run("token", env=env)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = tw.Verifier(idp.issuer, audience=None).verify(token)
    assert claims["azp"] == "ops-agent"
    as_json = json.loads(run("token", "--json", env=env).stdout)
    assert as_json["token_type"] == "Bearer" and 0 < as_json["expires_in"] <= 300
    assert tw.Verifier(idp.issuer).verify(as_json["access_token"])["azp"] == "ops-agent"


def test_token_with_the_secret_from_a_file_and_the_issuer_as_an_option(
    idp: DevIdP, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    result = run(
        "token",
        "--issuer",
        idp.issuer,
        "--client-id",
        "ops-agent",
        "--secret-file",
        str(secret_file),
    )
    assert result.returncode == 0, result.stderr
    assert tw.Verifier(idp.issuer).verify(result.stdout.strip())["azp"] == "ops-agent"


def test_token_refusals_and_failures_have_their_exit_codes(idp: DevIdP, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret")
    refused = run(
        "token", "--issuer", idp.issuer, "--client-id", "ops-agent", "--secret-file", str(wrong)
    )
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "invalid_client" in refused.stderr
    # No secret anywhere and no terminal to prompt on: a usage error naming the ways to give one.
    none = run("token", "--issuer", idp.issuer, "--client-id", "ops-agent")
    assert none.returncode == 2 and "--secret-file" in none.stderr
    missing = run("token", "--client-id", "ops-agent", "--secret-file", str(wrong))
    assert missing.returncode == 2 and "KEYCLOAK_URL" in missing.stderr
    issuer = idp.issuer
    idp.close()
    down = run("token", "--issuer", issuer, "--client-id", "ops-agent", "--secret-file", str(wrong))
    assert down.returncode == 3 and down.stderr.count("\n") == 1


def test_token_by_password_grant(idp: DevIdP, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    args = (
        "token",
        "--user",
        "alice",
        "--client-id",
        "SmartEM_User",
        "--password-file",
        str(password_file),
    )
    result = run(*args, "--json", env=keycloak_env(idp))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert {"access_token", "expires_in", "refresh_token"} <= document.keys()
    claims = tw.Verifier(idp.issuer).verify(document["access_token"])
    assert claims["preferred_username"] == "alice"
    password_file.write_text("wrong")
    refused = run(*args, env=keycloak_env(idp))
    assert refused.returncode == 1 and "invalid_grant" in refused.stderr
    no_terminal = run(
        "token", "--user", "alice", "--client-id", "SmartEM_User", env=keycloak_env(idp)
    )
    assert no_terminal.returncode == 2 and "--password-file" in no_terminal.stderr


def test_token_prompts_for_the_secret_on_a_terminal_without_echoing_it(idp: DevIdP) -> None:
    pty = pytest.importorskip("pty")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the console script on a terminal
        os.execve(
            str(TOKENWARD),
            [str(TOKENWARD), "token", "--issuer", idp.issuer, "--client-id", "ops-agent"],
            {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "KEY"))},
        )
    seen = b""
    while b"client secret:" not in seen:
        seen += os.read(fd, 1024)
    os.write(fd, SECRET.encode() + b"\n")
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert SECRET.encode() not in seen
    token = seen.split(b"client secret:", 1)[1].split()[-1].decode()
    assert tw.Verifier(idp.issuer).verify(token)["azp"] == "ops-agent"


def test_inspect_shows_the_token_unverified_with_times_roles_and_groups(idp: DevIdP) -> None:
    token = idp.mint(
        sub="u7",
        realm_access={"roles": ["reader"]},
        resource_access={"smartem": {"roles": ["admin"]}},
        groups=["/facility"],
    )
    text = run("inspect", token)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert out.startswith("UNVERIFIED")
    assert '"u7"' in out and "realm roles:  reader" in out and "smartem: admin" in out
    assert "groups:       /facility" in out and "exp:" in out and "(in 4m" in out
    # A pasted header value, from stdin.
    pasted = run("inspect", "-", "--json", stdin=f"Authorization: Bearer {token}\n")
    info = json.loads(pasted.stdout)
    assert info["verified"] is False and info["claims"]["sub"] == "u7"
    assert info["realm_roles"] == ["reader"] and info["client_roles"] == {"smartem": ["admin"]}
    assert info["header"]["kid"] == idp.current_kid and info["expired"] is False
    expired = json.loads(run("inspect", "--json", idp.mint(expires_in=-120)).stdout)
    assert expired["expired"] is True and expired["times"]["exp"]["relative"].endswith("ago")
    garbage = run("inspect", "not-a-token")
    assert garbage.returncode == 1 and garbage.stderr.startswith("tokenward inspect: not a JWT")


def test_verify_reads_keycloak_settings_and_the_options_win(idp: DevIdP) -> None:
    env = keycloak_env(idp)
    token = idp.mint(aud="smartem")
    ok = run("verify", token, env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"valid: signed by {idp.issuer}")
    assert json.loads(ok.stdout.split("\n", 1)[1])["aud"] == "smartem"
    as_json = json.loads(run("verify", "--json", token, env=env).stdout)
    assert as_json["valid"] is True and as_json["claims"]["aud"] == "smartem"
    wrong_aud = run("verify", "--audience", "other", "--json", token, env=env)
    assert wrong_aud.returncode == 1
    assert json.loads(wrong_aud.stdout)["code"] == "bad_audience"
    env_aud = run("verify", token, env={**env, "KEYCLOAK_AUDIENCE": "other"})
    assert env_aud.returncode == 1 and env_aud.stdout.startswith("rejected: bad_audience")
    assert run("verify", "--azp", "someone-else", token, env=env).returncode == 1
    expired = idp.mint(expires_in=-100)
    assert run("verify", expired, env=env).stdout.startswith("rejected: expired")
    assert run("verify", "--leeway", "200", expired, env=env).returncode == 0
    from_stdin = run("verify", "-", env=env, stdin=f"Bearer {token}")
    assert from_stdin.returncode == 0
    explicit = run("verify", "--issuer", idp.issuer, "--jwks-uri", idp.jwks_uri, token)
    assert explicit.returncode == 0


def test_verify_exit_codes_for_configuration_and_an_unreachable_idp(idp: DevIdP) -> None:
    token = idp.mint()
    no_config = run("verify", token)
    assert no_config.returncode == 2 and "KEYCLOAK_URL" in no_config.stderr
    bad_bundle = run("verify", "--ca-bundle", "/nonexistent.pem", token, env=keycloak_env(idp))
    assert bad_bundle.returncode == 2 and bad_bundle.stderr.count("\n") == 1
    env = keycloak_env(idp)
    idp.close()
    down = run("verify", token, env=env)
    assert down.returncode == 3 and down.stderr.count("\n") == 1


def test_jwks_lists_the_keys_and_the_core_s_reasons_for_skipping(idp: DevIdP) -> None:
    ec_kid = idp.add_key("ES256")
    weak = tw._native.SigningKey.generate("RS256").public_jwk()
    weak.update(kid="weak", n="sXch")  # a 20-bit modulus
    enc = dict(idp.signing_key().public_jwk(), kid="enc-key", use="enc")
    idp.extra_jwks.extend([weak, enc])
    text = run("jwks", idp.issuer)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"{idp.jwks_uri}: 4 keys, 2 usable"
    by_kid = {line.split()[0]: line for line in lines[2:]}
    assert by_kid[idp.current_kid].split()[1:5] == ["RSA", "RS256", "sig", "2048"]
    assert by_kid[idp.current_kid].endswith("used")
    assert by_kid[ec_kid].split()[1:5] == ["EC", "ES256", "sig", "256"]
    assert re.search(r"skipped: RSA key of \d+ bits; at least 2048 are required", by_kid["weak"])
    assert 'skipped: use is "enc"' in by_kid["enc-key"]
    data = json.loads(run("jwks", "--json", env=keycloak_env(idp)).stdout)
    assert data["usable"] == 2 and data["jwks_uri"] == idp.jwks_uri
    skipped = {k["kid"]: k["skipped"] for k in data["keys"] if not k["used"]}
    assert skipped.keys() == {"weak", "enc-key"}


def test_jwks_exit_codes(idp: DevIdP) -> None:
    assert run("jwks").returncode == 2
    for kid in idp.kids:
        idp.remove_key(kid)
    idp.extra_jwks.append({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"})
    nothing_usable = run("jwks", idp.issuer)
    assert nothing_usable.returncode == 1 and "0 usable" in nothing_usable.stdout
    issuer = idp.issuer
    idp.close()
    down = run("jwks", issuer, "--json")
    assert down.returncode == 3 and down.stdout == "" and down.stderr.count("\n") == 1


@pytest.fixture
def service(idp: DevIdP) -> Iterator[str]:
    auth = Authenticator(tw.Verifier(idp.issuer))
    app = FastAPI()

    @app.get("/me")
    async def me(claims: Annotated[dict[str, Any], Depends(auth.claims)]) -> dict[str, Any]:
        return {"azp": claims["azp"]}

    with serve(app) as url:
        yield url


def test_call_sends_a_client_credentials_token(idp: DevIdP, service: str) -> None:
    env = {**keycloak_env(idp), "AGENT_CLIENT_ID": "ops-agent", "AGENT_CLIENT_SECRET": SECRET}
    ok = run("call", f"{service}/me", env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0] == "HTTP 200 OK"
    assert json.loads(ok.stdout.splitlines()[1]) == {"azp": "ops-agent"}
    as_json = json.loads(run("call", "--json", f"{service}/me", env=env).stdout)
    assert as_json["status"] == 200 and as_json["www_authenticate"] is None


def test_call_shows_the_www_authenticate_answer(idp: DevIdP, service: str, tmp_path: Path) -> None:
    expired = tmp_path / "token"
    expired.write_text("Bearer " + idp.mint(expires_in=-300))
    refused = run("call", f"{service}/me", "--token-file", str(expired))
    assert refused.returncode == 1
    assert refused.stdout.splitlines()[0] == "HTTP 401 Unauthorized"
    assert refused.stdout.splitlines()[1].startswith("WWW-Authenticate: Bearer")
    assert 'error="invalid_token"' in refused.stdout
    data = json.loads(run("call", "--json", "--no-token", f"{service}/me").stdout)
    assert data["status"] == 401 and data["www_authenticate"].startswith("Bearer")
    fresh = run("call", f"{service}/me", "--token-stdin", stdin=idp.mint(azp="SmartEM_User"))
    assert fresh.returncode == 0 and "SmartEM_User" in fresh.stdout
    bad_header = run("call", f"{service}/me", "--no-token", "-H", "no colon")
    assert bad_header.returncode == 2
    unreachable = run("call", "http://127.0.0.1:9/me", "--no-token")
    assert unreachable.returncode == 3 and unreachable.stderr.count("\n") == 1
