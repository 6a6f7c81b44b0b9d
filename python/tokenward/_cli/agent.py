"""`tokenward agent enrol|rotate-key|list|disable|delete`: per-workstation agent identities
(docs/agents.md). Tokens and secrets come from a file, the environment or a prompt, never from
an argument; none is printed."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from ._common import OK, REJECTED, UNREACHABLE, USAGE, Fail, add_json, print_json, read_secret

if TYPE_CHECKING:
    from ..agents import AgentError
    from ..token_client import TokenClient

HELP = "enrol this workstation as an agent; rotate its key; list, disable or delete agents"
INITIAL_ACCESS_ENV = ("TOKENWARD_INITIAL_ACCESS_TOKEN",)
OPERATOR_ID_ENV = "TOKENWARD_OPERATOR_CLIENT_ID"
OPERATOR_SECRET_ENV = ("TOKENWARD_OPERATOR_SECRET",)


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("agent", help=HELP, description=HELP + ".")
    commands = p.add_subparsers(dest="agent_command", metavar="ACTION", required=True)

    enrol = commands.add_parser(
        "enrol",
        help="make a key pair and a client for this workstation; write its config",
        description="Generate a key pair, register a client with signed-JWT authentication "
        "(with an initial access token, or as an operator), and write the agent's config. The "
        "initial access token comes from --initial-access-token-file, else "
        "TOKENWARD_INITIAL_ACCESS_TOKEN, else a prompt.",
    )
    _where(enrol)
    enrol.add_argument("--dir", required=True, help="where the key and agent.env are written")
    enrol.add_argument("--client-id", help="the client id (default: SmartEM_Agent_<host>)")
    enrol.add_argument("--key-type", choices=("ec-p256", "rsa-2048", "ed25519"), default="ec-p256")
    enrol.add_argument("--initial-access-token-file", help="read the initial access token here")
    _operator_options(enrol, optional=True)
    enrol.set_defaults(run=_enrol)

    rotate = commands.add_parser(
        "rotate-key",
        help="register a new key beside the old one and switch the config to it",
        description="Without --finish: a new key is registered beside the old one (both work) "
        "and agent.env points at it; restart the agent (or make a new TokenClient), then run "
        "again with --finish to unregister the old key. --now does both at once (for an agent "
        "that is not running).",
    )
    rotate.add_argument("--config", required=True, help="the agent's agent.env")
    rotate.add_argument("--key-type", choices=("ec-p256", "rsa-2048", "ed25519"))
    group = rotate.add_mutually_exclusive_group()
    group.add_argument("--finish", action="store_true", help="unregister the old key(s) only")
    group.add_argument("--now", action="store_true", help="stage and finish in one go")
    rotate.add_argument("--timeout", type=float, default=10.0)
    rotate.add_argument("--ca-bundle")
    _operator_options(rotate, optional=True)
    add_json(rotate)
    rotate.set_defaults(run=_rotate)

    listing = commands.add_parser("list", help="list agent clients (view-clients)")
    _where(listing)
    listing.add_argument("--prefix", default="SmartEM_Agent_")
    _operator_options(listing, optional=False)
    listing.set_defaults(run=_list)

    for name, action in (
        ("disable", "disable an agent: its next token request fails"),
        ("enable", "enable a disabled agent again"),
        ("delete", "delete an agent's client"),
    ):
        cmd = commands.add_parser(name, help=action + " (manage-clients)")
        cmd.add_argument("client_id")
        _where(cmd)
        _operator_options(cmd, optional=False)
        cmd.set_defaults(run=_switch, action=name)


def _where(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="the Keycloak base URL (default: KEYCLOAK_URL)")
    p.add_argument("--realm", help="the realm (default: KEYCLOAK_REALM, else dls)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP call")
    p.add_argument("--ca-bundle", help="PEM file of the CA(s) to trust for Keycloak")
    add_json(p)


def _operator_options(p: argparse.ArgumentParser, optional: bool) -> None:
    p.add_argument(
        "--operator-client-id",
        help="the admin service account's client id (default: TOKENWARD_OPERATOR_CLIENT_ID)"
        + ("; given, the Admin API is used instead of client registration" if optional else ""),
    )
    p.add_argument(
        "--operator-secret-file",
        help="its secret, from this file (else TOKENWARD_OPERATOR_SECRET, else a prompt)",
    )


def _url_realm(args: argparse.Namespace) -> tuple[str, str]:
    url = args.url or os.environ.get("KEYCLOAK_URL")
    if not url:
        raise Fail("no Keycloak URL: give --url or set KEYCLOAK_URL", USAGE)
    return url.rstrip("/"), args.realm or os.environ.get("KEYCLOAK_REALM") or "dls"


def _operator(args: argparse.Namespace, url: str, realm: str, required: bool) -> TokenClient | None:
    client_id = args.operator_client_id or os.environ.get(OPERATOR_ID_ENV)
    if not client_id:
        if required:
            raise Fail(f"no operator: give --operator-client-id or set {OPERATOR_ID_ENV}", USAGE)
        return None
    secret = read_secret(
        secret_file=args.operator_secret_file,
        env_names=OPERATOR_SECRET_ENV,
        prompt=f"secret of {client_id}: ",
        required=True,
    )
    from .. import TokenClient
    from .._native import realm_issuer

    return TokenClient(
        client_id=client_id,
        client_secret=secret,
        issuer=realm_issuer(url, realm),
        timeout=args.timeout,
    )


def _failed(error: AgentError) -> Fail:
    """Keycloak refused (exit 1) or could not be reached (exit 3)."""
    return Fail(str(error), UNREACHABLE if error.unreachable else REJECTED)


def _enrol(args: argparse.Namespace) -> int:
    from ..agents import AgentError, enrol

    url, realm = _url_realm(args)
    operator = _operator(args, url, realm, required=False)
    token = None
    if operator is None:
        token = read_secret(
            secret_file=args.initial_access_token_file,
            env_names=INITIAL_ACCESS_ENV,
            prompt="initial access token: ",
            required=False,
        )
        if token is None:
            raise Fail(
                "no initial access token: use --initial-access-token-file, set "
                f"{INITIAL_ACCESS_ENV[0]}, run in a terminal, or enrol as an operator "
                "(--operator-client-id)",
                USAGE,
            )
    try:
        done = enrol(
            url,
            args.dir,
            realm=realm,
            client_id=args.client_id,
            key_type=args.key_type,
            initial_access_token=token,
            operator=operator,
            timeout=args.timeout,
            ca_bundle=args.ca_bundle,
        )
    except AgentError as exc:
        raise _failed(exc) from None
    summary = done.summary()
    if args.json:
        print_json(summary)
    else:
        print(f"enrolled {done.client_id}")
        print(f"  key id       {done.kid} ({done.alg})")
        print(f"  fingerprint  SHA-256 {done.fingerprint} (RFC 7638 JWK thumbprint)")
        print(f"  private key  {done.key_file} (owner-only)")
        print(f"  config       {done.config_file}")
        if done.registration_file:
            print(f"  registration {done.registration_file} (owner-only; needed to rotate)")
    return OK


def _rotate(args: argparse.Namespace) -> int:
    from ..agents import AgentError, finish_rotation, rotate_key
    from ..agents._agent import _read_config

    config = _read_config(args.config)
    operator = _operator(args, config.url, config.realm, required=False)
    result: dict[str, Any] = {"client_id": config.client_id}
    try:
        if not args.finish:
            staged = rotate_key(
                args.config,
                key_type=args.key_type,
                operator=operator,
                timeout=args.timeout,
                ca_bundle=args.ca_bundle,
            )
            result.update(
                old_kid=staged.old_kid,
                new_kid=staged.new_kid,
                key_file=str(staged.new_key_file),
                registered_kids=list(staged.registered_kids),
            )
        if args.finish or args.now:
            result["removed_kids"] = list(
                finish_rotation(
                    args.config, operator=operator, timeout=args.timeout, ca_bundle=args.ca_bundle
                )
            )
    except AgentError as exc:
        raise _failed(exc) from None
    if args.json:
        print_json(result)
    else:
        if "new_kid" in result:
            print(
                f"{config.client_id}: new key {result['new_kid']} registered beside "
                f"{result['old_kid']}; config now uses {result['key_file']}"
            )
        if "removed_kids" in result:
            print(
                f"{config.client_id}: unregistered {', '.join(result['removed_kids']) or 'nothing'}"
            )
        elif not args.finish:
            print("restart the agent, then run `tokenward agent rotate-key --finish`")
    return OK


def _list(args: argparse.Namespace) -> int:
    from ..agents import AgentError, list_agents

    url, realm = _url_realm(args)
    operator = _operator(args, url, realm, required=True)
    assert operator is not None
    try:
        agents = list_agents(
            url,
            operator,
            realm=realm,
            prefix=args.prefix,
            timeout=args.timeout,
            ca_bundle=args.ca_bundle,
        )
    except AgentError as exc:
        raise _failed(exc) from None
    if args.json:
        print_json(
            [
                {"client_id": a.client_id, "id": a.id, "enabled": a.enabled, "kids": list(a.kids)}
                for a in agents
            ]
        )
    else:
        for a in agents:
            state = "enabled " if a.enabled else "DISABLED"
            print(f"{state} {a.client_id}  keys: {', '.join(a.kids) or '-'}")
    return OK


def _switch(args: argparse.Namespace) -> int:
    from ..agents import AgentError, delete_agent, set_agent_enabled

    url, realm = _url_realm(args)
    operator = _operator(args, url, realm, required=True)
    assert operator is not None
    try:
        if args.action == "delete":
            delete_agent(
                url,
                operator,
                args.client_id,
                realm=realm,
                timeout=args.timeout,
                ca_bundle=args.ca_bundle,
            )
        else:
            set_agent_enabled(
                url,
                operator,
                args.client_id,
                args.action == "enable",
                realm=realm,
                timeout=args.timeout,
                ca_bundle=args.ca_bundle,
            )
    except AgentError as exc:
        raise _failed(exc) from None
    done = {"delete": "deleted", "enable": "enabled", "disable": "disabled"}[args.action]
    if args.json:
        print_json({"client_id": args.client_id, "action": done})
    else:
        print(f"{args.client_id} {done}")
    return OK
