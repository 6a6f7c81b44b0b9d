"""Issue 11, the web layer (items 8, 12-16), over real HTTP (uvicorn on 127.0.0.1, the DevIdP):
a `User` returned from a route, WebSocket routes behind the dependency forms, exempt paths
behind `root_path` and mounts, RFC 6750's header syntax sent as exact bytes, claims in log
lines, and look-alike emails against the allowlist."""

import dataclasses
import json
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import pytest
import tokenward as tw
from _uvicorn import serve
from conftest import MakeVerifier
from fastapi import Depends, FastAPI, WebSocket
from fastapi.responses import JSONResponse
from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.routing import Mount
from tokenward import smartem
from tokenward._bearer import loggable, route_path
from tokenward.allowlist import REQUIRE_VERIFIED_ENV, EmailAllowlist
from tokenward.fastapi import Authenticator, User
from tokenward.forwarding import ForwardedBearer
from tokenward.middleware import BearerAuthMiddleware
from tokenward.rbac import Policy
from tokenward.testing import DevIdP
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

TIMEOUT = 10

# ---- raw HTTP: exactly the bytes a test means to send --------------------------------------------


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw(url: str, target: str, headers: list[tuple[str, bytes | str]] = ()) -> Answer:  # type: ignore[assignment]
    """One GET of `target` with `headers` as given (repeats, tabs, latin-1 bytes), over a plain
    socket, so no client library normalises the path or the values."""
    parts = urlsplit(url)
    lines = [f"GET {target} HTTP/1.1".encode("ascii"), b"Host: 127.0.0.1", b"Connection: close"]
    for name, value in headers:
        data = value if isinstance(value, bytes) else value.encode("latin-1")
        lines.append(name.encode("ascii") + b": " + data)
    with socket.create_connection((parts.hostname or "", parts.port or 80), TIMEOUT) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split()[1]), answer_headers, body)


def bearer(token: str) -> list[tuple[str, bytes | str]]:
    return [("Authorization", f"Bearer {token}")]


# ---- the three forms of protection, each over one protected app ---------------------------------

HEALTH = {"ok": True}


def _routes(app: FastAPI) -> FastAPI:
    @app.get("/health")
    async def health() -> dict[str, bool]:
        return HEALTH

    # Everything else is protected: a trick that opened a route would answer 200 with its path.
    @app.get("/{path:path}")
    async def anything(path: str) -> dict[str, str]:
        return {"path": path}

    return app


def middleware_app(auth: Authenticator, **options: Any) -> FastAPI:
    app = FastAPI(**options)
    app.add_middleware(BearerAuthMiddleware, authenticator=auth)
    return _routes(app)


def dependency_app(auth: Authenticator, **options: Any) -> FastAPI:
    return _routes(FastAPI(dependencies=[Depends(auth.app_dependency)], **options))


def smartem_app(_: Authenticator, **options: Any) -> FastAPI:
    return _routes(FastAPI(dependencies=[Depends(smartem.verify_token)], **options))


FORMS: dict[str, Callable[..., FastAPI]] = {
    "middleware": middleware_app,
    "dependency": dependency_app,
    "smartem": smartem_app,
}


@pytest.fixture
def auth(make_verifier: MakeVerifier) -> Iterator[Authenticator]:
    """tokenward's authenticator, and SmartEM's backend on the same verifier."""
    verifier = make_verifier()
    smartem.set_verifier(verifier)
    yield Authenticator(verifier, exempt_paths={"/health"}, allowlist=False, role_clients=())
    smartem.reset_verifier()


# ---- item 8: a User returned from a route ----------------------------------------------------------


def test_a_user_returned_from_a_route_shows_neither_token_nor_claims(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    auth = Authenticator(make_verifier(), allowlist=False, role_clients=())
    app = FastAPI()

    @app.get("/annotated")
    async def annotated(user: Annotated[User, Depends(auth.user)]) -> User:
        return user

    @app.get("/plain")
    async def plain(user: Annotated[User, Depends(auth.user)]):  # type: ignore[no-untyped-def]
        return user  # no annotation: FastAPI's jsonable_encoder

    @app.get("/model", response_model=User)
    async def model(user: Annotated[User, Depends(auth.user)]) -> Any:
        return user

    @app.get("/nested")
    async def nested(user: Annotated[User, Depends(auth.user)]) -> dict[str, Any]:
        return {"user": user}

    @app.get("/asdict")
    async def as_dict(user: Annotated[User, Depends(auth.user)]) -> JSONResponse:
        return JSONResponse(dataclasses.asdict(user))

    @app.get("/explicit")
    async def explicit(user: Annotated[User, Depends(auth.user)]) -> dict[str, Any]:
        return {"jti": user.claims["jti"], "token_len": len(user.token)}

    token = dev_idp.mint(sub="u8", email="u8@example.org", marker="claim-only-value-8f3a")
    public = {
        "uid": "u8",
        "username": "u8",
        "email": "u8@example.org",
        "roles": [],
        "groups": [],
        "azp": "SmartEM_User",
    }
    with serve(app) as url:
        for path in ("/annotated", "/plain", "/model", "/nested", "/asdict"):
            answer = raw(url, path, bearer(token))
            assert answer.status == 200, (path, answer.body)
            text = answer.body.decode()
            for secret in (token, *token.split("."), "claim-only-value-8f3a", "jti", "marker"):
                assert secret not in text, (path, secret)
            document = answer.json()
            assert (document["user"] if path == "/nested" else document) == public, path
        # Explicit access still gives both.
        answer = raw(url, "/explicit", bearer(token))
        assert answer.json()["token_len"] == len(token)
        assert answer.json()["jti"]

    user = User.from_claims({"sub": "u", "marker": "m"}, "tok.en.x")
    assert "tok.en.x" not in repr(user) and "marker" not in repr(user)
    assert "tok.en.x" not in json.dumps(dataclasses.asdict(user))
    assert [f.name for f in dataclasses.fields(user)] == list(public)
    with pytest.raises(TypeError):
        vars(user)  # no __dict__ to walk
    with pytest.raises(dataclasses.FrozenInstanceError):
        user.uid = "x"  # type: ignore[misc]
    assert user.token == "tok.en.x" and user.claims == {"sub": "u", "marker": "m"}
    assert user == User.from_claims({"sub": "u"}, "tok.en.x") != User.from_claims({"sub": "u"}, "y")


# ---- item 12: WebSocket routes behind the dependency forms ------------------------------------------


def websocket_app(form: str, auth: Authenticator) -> FastAPI:
    if form == "dependency":
        app = FastAPI(dependencies=[Depends(auth.app_dependency)])

        @app.websocket("/ws")
        async def ws(websocket: WebSocket, user: Annotated[User, Depends(auth.user)]) -> None:
            await websocket.accept()
            await websocket.send_text(user.uid)
            await websocket.close()

    else:
        app = FastAPI(dependencies=[Depends(smartem.verify_token)])

        @app.websocket("/ws")
        async def ws_smartem(
            websocket: WebSocket,
            claims: Annotated[dict[str, Any] | None, Depends(smartem.verify_token)],
        ) -> None:
            await websocket.accept()
            await websocket.send_text(claims["sub"] if claims else "none")
            await websocket.close()

    return _routes(app)


@pytest.mark.parametrize("form", ["dependency", "smartem"])
def test_websocket_routes_work_behind_the_dependency_forms(
    form: str, auth: Authenticator, dev_idp: DevIdP, caplog: pytest.LogCaptureFixture
) -> None:
    app = websocket_app(form, auth)
    with serve(app) as url:
        ws_url = url.replace("http://", "ws://") + "/ws"
        # Refused as the middleware refuses: closed before accept, which the server answers 403.
        for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic eA=="}):
            with (
                caplog.at_level(logging.INFO, logger="tokenward"),
                pytest.raises(InvalidStatus) as refused,
            ):
                connect(ws_url, additional_headers=headers, open_timeout=TIMEOUT)
            assert refused.value.response.status_code == 403, headers
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        token = dev_idp.mint(sub="ws12")
        with connect(
            ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=TIMEOUT
        ) as ws:
            assert ws.recv(timeout=TIMEOUT) == "ws12"
        # HTTP on the same app keeps its answers.
        answer = raw(url, "/data")
        assert answer.status == 401
        expected = "Missing or malformed Authorization header" if form == "smartem" else None
        assert answer.json() == {"detail": expected or "Not authenticated"}
        assert answer.headers["www-authenticate"] == "Bearer"
        assert raw(url, "/data", bearer(token)).json() == {"path": "data"}


def test_verify_token_can_be_overridden_on_a_websocket_route(auth: Authenticator) -> None:
    app = websocket_app("smartem", auth)
    app.dependency_overrides[smartem.verify_token] = lambda: {"sub": "override"}
    with (
        serve(app) as url,
        connect(url.replace("http://", "ws://") + "/ws", open_timeout=TIMEOUT) as ws,
    ):
        assert ws.recv(timeout=TIMEOUT) == "override"


# ---- item 13: exempt paths behind root_path and mounts ---------------------------------------------

#: (target, status) for each setup: 200 only ever with the health body. The client's targets
#: carry the prefix where the app sees it (FastAPI(root_path=...), Mount) and not where an
#: ingress stripped it (uvicorn --root-path).
UVICORN_ROOT_PATH = [
    ("/health", 200),
    ("/health?probe=1", 200),
    ("/he%61lth", 200),
    ("//health", 401),
    ("/%2Fhealth", 401),
    ("/health/", 401),
    ("/Health", 401),
    ("/health/../data", 401),
    ("/health%2F..%2Fdata", 401),
    ("/../health", 401),
    ("/api/health", 401),
    ("/apix/health", 401),
    ("/data", 401),
]
APP_ROOT_PATH = [
    ("/api/health", 200),
    ("/api/health?probe=1", 200),
    ("/api/he%61lth", 200),
    ("/api%2Fhealth", 200),  # the server decodes it to /api/health: the health route
    ("/health", 200),  # Starlette routes a path outside root_path as it is: the health route
    ("/api//health", 401),
    ("/api/%2Fhealth", 401),
    ("/api/health/", 401),
    ("/api/../data", 401),
    ("/api/../health", 401),
    ("/api/health/../data", 401),
    ("/api/health%2F..%2Fdata", 401),
    ("/apix/health", 401),
    ("/api/api/health", 401),
    ("/api/data", 401),
]
MOUNT = [
    ("/api/health", 200),
    ("/api/health?probe=1", 200),
    ("/api/he%61lth", 200),
    ("/api%2Fhealth", 200),
    ("/api//health", 401),
    ("/api/%2Fhealth", 401),
    ("/api/health/", 401),
    ("/api/../health", 401),
    ("/api/health/../data", 401),
    ("/api/health%2F..%2Fdata", 401),
    ("/api/api/health", 401),
    ("/api/data", 401),
    # Not under the mount at all: the outer app has no such route (and no auth to skip).
    ("/apix/health", 404),
    ("/health", 404),
]


def _setup(name: str, form: str, auth: Authenticator) -> tuple[Any, dict[str, Any], str]:
    """The app to serve, uvicorn's options, and the prefix a client puts before /data."""
    make = FORMS[form]
    if name == "uvicorn --root-path":
        return make(auth), {"root_path": "/api"}, ""
    if name == "FastAPI(root_path)":
        return make(auth, root_path="/api"), {}, "/api"
    return Starlette(routes=[Mount("/api", app=make(auth))]), {}, "/api"


SETUPS = {
    "uvicorn --root-path": UVICORN_ROOT_PATH,
    "FastAPI(root_path)": APP_ROOT_PATH,
    "Mount": MOUNT,
}


# FastAPI deprecates its root_path parameter for the server's; apps still use it.
@pytest.mark.filterwarnings("ignore:The `root_path` parameter is deprecated")
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("setup", list(SETUPS))
def test_exempt_paths_match_the_path_the_app_routes(
    setup: str, form: str, auth: Authenticator, dev_idp: DevIdP
) -> None:
    app, options, prefix = _setup(setup, form, auth)
    with serve(app, **options) as url:
        for target, status in SETUPS[setup]:
            answer = raw(url, target)
            assert answer.status == status, (target, answer.status, answer.body)
            if status == 200:
                assert answer.json() == HEALTH, target
        # The setup is really protected and really routes.
        assert raw(url, f"{prefix}/data", bearer(dev_idp.mint())).json() == {"path": "data"}


@pytest.mark.parametrize(
    ("path", "root_path"),
    [
        ("/api/health", "/api"),
        ("/api", "/api"),
        ("/apix/health", "/api"),
        ("/health", "/api"),
        ("/api//health", "/api"),
        ("/a/b/c", "/a/b"),
        ("/x", ""),
        ("/api/", "/api/"),
        ("/api/x", "/api/"),
    ],
)
def test_route_path_is_starlettes(path: str, root_path: str) -> None:
    scope = {"type": "http", "path": path, "root_path": root_path}
    assert route_path(scope) == get_route_path(scope)


# ---- item 14: RFC 6750's syntax, as exact bytes ---------------------------------------------------


@pytest.mark.parametrize("form", list(FORMS))
def test_the_header_is_bearer_spaces_and_a_b64token(
    form: str, auth: Authenticator, dev_idp: DevIdP
) -> None:
    token = dev_idp.mint()
    smartem_form = form == "smartem"
    no_credentials = (
        "Missing or malformed Authorization header" if smartem_form else "Not authenticated"
    )
    malformed = "Invalid token" if smartem_form else "The token is malformed"
    with serve(FORMS[form](auth)) as url:
        for value in (f"Bearer {token}", f"bearer   {token}", f"BEARER {token}"):
            assert raw(url, "/data", [("Authorization", value)]).status == 200, value
        # Not the Bearer scheme followed by a space: no bearer credentials at all.
        for sep in (b"\t", b"\xa0", b"\x85", b"\t "):
            answer = raw(url, "/data", [("Authorization", b"Bearer" + sep + token.encode())])
            assert answer.status == 401, sep
            assert answer.json() == {"detail": no_credentials}, sep
            assert answer.headers["www-authenticate"] == "Bearer", sep
        # Bearer and spaces, then not a b64token (str.strip() used to drop NBSP and NEL).
        for bad in (
            token.encode() + b"\xa0",
            token.encode() + b"\x85",
            b"\xa0" + token.encode(),
            token.encode() + b" x",
            b"t\xf6ken",
            token.encode()[:20] + b"=" + b"a",
        ):
            answer = raw(url, "/data", [("Authorization", b"Bearer " + bad)])
            assert answer.status == 401, bad
            assert answer.json() == {"detail": malformed}, bad
        # Two headers: 400 invalid_request, whichever is good.
        for pair in ((f"Bearer {token}", f"Bearer {token}"), ("Bearer x", f"Bearer {token}")):
            answer = raw(url, "/data", [("Authorization", value) for value in pair])
            assert answer.status == 400, pair
            if smartem_form:
                assert answer.json() == {"detail": "Multiple Authorization headers"}
                assert answer.headers["www-authenticate"] == "Bearer"
            else:
                text = "The request has more than one Authorization header"
                assert answer.json() == {"detail": text}
                assert answer.headers["www-authenticate"] == (
                    f'Bearer error="invalid_request", error_description="{text}"'
                )
        # Even on an exempt path the request is not refused for its headers (never looked at).
        assert raw(url, "/health", [("Authorization", "a"), ("Authorization", "b")]).status == 200


@pytest.mark.parametrize(
    "bad",
    [
        "a\x0bb",
        "a\x0cb",
        "a\x7fb",
        "a\x1bb",
        "a\x85b",
        "a\u2028b",
        "t\xf6ken",
        "a\xa0",
        "a\tb",
        "a b",
        "a\r\nX-Evil: 1",
        "a=b",
        "=",
        "\x85abc",
    ],
)
def test_forwarded_bearer_takes_only_a_b64token(bad: str) -> None:
    with pytest.raises(ValueError):
        ForwardedBearer(bad)


def test_forwarded_bearer_sends_a_valid_token_over_http(
    auth: Authenticator, dev_idp: DevIdP
) -> None:
    import requests

    token = dev_idp.mint(sub="fw14")
    assert ForwardedBearer(f" {token}\t").token == token  # HTTP's own whitespace only
    with serve(middleware_app(auth)) as url:
        response = requests.get(f"{url}/data", auth=ForwardedBearer(token), timeout=TIMEOUT)
    assert response.status_code == 200 and response.json() == {"path": "data"}


# ---- item 15: claims in log lines --------------------------------------------------------------

HOSTILE = "u1\r\n2026-01-01 INFO tokenward forged=line\x1b[2J\x85\u2028\u202e"


def _assert_one_clean_line(message: str) -> None:
    assert all(c not in message for c in "\r\n\x1b\x85\u2028\u202e"), repr(message)
    assert "\\r\\n" in message and "\\x1b" in message and "\\u2028" in message


def test_claims_are_escaped_in_the_allowlist_and_rbac_log_lines(
    dev_idp: DevIdP, make_verifier: MakeVerifier, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    allowed = tmp_path / "allowlist.txt"
    allowed.write_text("kate@example.org\n")
    verifier = make_verifier()
    listed = Authenticator(verifier, allowlist=allowed)
    open_auth = Authenticator(verifier, allowlist=False)
    policy = Policy({"admin": {"*": ["*"]}})
    app = FastAPI()

    @app.get("/listed")
    async def listed_route(claims: Annotated[dict[str, Any], Depends(listed.claims)]) -> str:
        return "ok"

    @app.get("/admin")
    async def admin(
        user: Annotated[
            User, Depends(policy.authorize("read", "x", user_dependency=open_auth.user))
        ],
    ) -> str:
        return "ok"

    with serve(app) as url, caplog.at_level(logging.INFO, logger="tokenward"):
        email = "mallory@example.org\nuser=kate@example.org allowed"
        token = dev_idp.mint(sub=HOSTILE, email=email)
        assert raw(url, "/listed", bearer(token)).status == 403
        token = dev_idp.mint(sub=HOSTILE, realm_access={"roles": ["viewer\r\nadmin"]})
        assert raw(url, "/admin", bearer(token)).status == 403
    allowlist_lines = [r.getMessage() for r in caplog.records if "allowlist:" in r.getMessage()]
    rbac_lines = [r.getMessage() for r in caplog.records if r.name == "tokenward.rbac"]
    assert len(allowlist_lines) == 1 and len(rbac_lines) == 1
    for message in (*allowlist_lines, *rbac_lines):
        _assert_one_clean_line(message)
    assert "email=mallory@example.org\\nuser=kate" in allowlist_lines[0]
    assert "viewer\\r\\nadmin" in rbac_lines[0]


def test_loggable() -> None:
    assert loggable("plain@example.org") == "plain@example.org"
    assert loggable("a\nb\x00c\x7fd\x9fe\u2029f\u2066") == "a\\nb\\x00c\\x7fd\\x9fe\\u2029f\\u2066"
    assert loggable("a\tb") == "a\\tb"
    assert loggable(None) == "None"
    assert loggable(["r\n"]) == "['r\\n']"
    assert loggable("é and ü stay") == "é and ü stay"


# ---- item 16: look-alikes and email_verified against the allowlist ---------------------------------


@pytest.fixture
def allowlist_file(tmp_path: Path) -> Path:
    path = tmp_path / "allowlist.txt"
    path.write_text("kate@example.org\nJosé@Example.org\n", encoding="utf-8")
    return path


def allowlist_app(auth: Authenticator) -> FastAPI:
    app = FastAPI()

    @app.get("/me")
    async def me(claims: Annotated[dict[str, Any], Depends(auth.claims)]) -> str:
        return str(claims["email"])

    return app


def test_only_the_listed_email_passes_compared_in_ascii(
    dev_idp: DevIdP, make_verifier: MakeVerifier, allowlist_file: Path
) -> None:
    auth = Authenticator(make_verifier(), allowlist=allowlist_file)
    cases = {
        "kate@example.org": 200,
        "KATE@Example.ORG": 200,
        "josé@example.org": 200,  # ASCII letters fold; é is the same code point
        "\u212aate@example.org": 403,  # KELVIN SIGN: "\u212a".lower() == "k"
        "\uff4bate@example.org": 403,  # FULLWIDTH k
        "kate@example.org ": 403,
        " kate@example.org": 403,
        "kate@example.org\u200b": 403,
        "kate@example.org\x85": 403,
        "kate@exampl\u0435.org": 403,  # CYRILLIC e
        "josÉ@example.org": 403,  # non-ASCII case is not folded
        "jose\u0301@example.org": 403,  # é decomposed: not normalised onto the entry
    }
    with serve(allowlist_app(auth)) as url:
        for email, status in cases.items():
            assert raw(url, "/me", bearer(dev_idp.mint(email=email))).status == status, email


def test_email_verified_passes_by_default_and_can_be_required(
    dev_idp: DevIdP,
    make_verifier: MakeVerifier,
    allowlist_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = make_verifier()
    lenient = Authenticator(verifier, allowlist=allowlist_file)
    strict = Authenticator(verifier, allowlist=allowlist_file, require_verified_email=True)
    monkeypatch.setenv("TOKENWARD_ALLOWLIST_FILE", str(allowlist_file))
    monkeypatch.setenv(REQUIRE_VERIFIED_ENV, "true")
    from_env = Authenticator(verifier)
    assert from_env.allowlist is not None and from_env.allowlist.require_verified_email
    cases: list[tuple[Any, int, int]] = [  # email_verified, lenient, strict
        (True, 200, 200),
        (False, 200, 403),
        (None, 200, 403),  # claim absent
        ("true", 200, 403),  # only the JSON boolean counts
        (1, 200, 403),
    ]
    with (
        serve(allowlist_app(lenient)) as l_url,
        serve(allowlist_app(strict)) as s_url,
        serve(allowlist_app(from_env)) as e_url,
    ):
        for verified, lenient_status, strict_status in cases:
            token = dev_idp.mint(email="kate@example.org", email_verified=verified)
            assert raw(l_url, "/me", bearer(token)).status == lenient_status, verified
            assert raw(s_url, "/me", bearer(token)).status == strict_status, verified
            assert raw(e_url, "/me", bearer(token)).status == strict_status, verified
        # Required but unlisted is still refused; verified does not let anyone in.
        token = dev_idp.mint(email="mallory@example.org", email_verified=True)
        assert raw(s_url, "/me", bearer(token)).status == 403

    monkeypatch.setenv(REQUIRE_VERIFIED_ENV, "maybe")
    with pytest.raises(tw.ConfigError):
        EmailAllowlist.from_env()
    with pytest.raises(TypeError):
        Authenticator(
            verifier, allowlist=EmailAllowlist(allowlist_file), require_verified_email=True
        )
