"""Streams that end with their token, over real HTTP: `ExpiringEventStream` and
`expiring_websocket` on uvicorn, the reopening clients (requests, httpx, httpx async) over
`BearerAuth` and a `TokenClient`, tokens from a DevIdP.

The five scenarios that live through a 10 s token run side by side from a module fixture (each
with its own DevIdP and server, so the token counts are its own); each test waits, bounded, for
its own scenario and asserts on it. The suite pays for one token lifetime, not five.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import requests
import tokenward as tw
import tokenward.httpx as tw_httpx
import tokenward.requests as tw_requests
from _helpers import claims_of
from _stream_server import Recorder, make_app
from _uvicorn import serve
from tokenward._sse import EventParser
from tokenward.fastapi import TOKEN_EXPIRED_EVENT, WS_TOKEN_EXPIRED, Authenticator, ServerEvent
from tokenward.testing import DevIdP
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

SECRET = "stream-secret"
LIFETIME = 10
GRACE = 1.0
#: How late after exp + grace the end may be seen: scheduling and the network, on a busy machine.
SLACK = 2.0
#: The longest any scenario may take before its test fails.
SCENARIO_TIMEOUT = 60.0


@contextmanager
def stack(
    rec: Recorder, token_lifetime: int = LIFETIME, allowlist: Any = False
) -> Iterator[tuple[DevIdP, str, Any]]:
    """A DevIdP, the stream app behind an `Authenticator` for it, and a `TokenClient`."""
    with DevIdP() as idp:
        idp.add_client("streamer", secret=SECRET, token_lifetime=token_lifetime)
        verifier = tw.Verifier(idp.issuer, http_timeout=2)
        auth = Authenticator(verifier, allowlist=allowlist)
        with serve(make_app(auth, rec)) as url:
            client = tw.TokenClient(
                idp.token_url, client_id="streamer", client_secret=SECRET, timeout=2
            )
            yield idp, url, client


# ---- the three client drivers, one signature ----------------------------------------------------


def via_requests(url: str, client: Any, **kw: Any) -> list[ServerEvent]:
    with requests.Session() as session:
        auth = tw_requests.BearerAuth(client)
        return list(tw_requests.iter_events(session, url, auth=auth, timeout=(5, 5), **kw))


def via_httpx(url: str, client: Any, **kw: Any) -> list[ServerEvent]:
    with httpx.Client(timeout=5) as http:
        return list(tw_httpx.iter_events(http, url, auth=tw_httpx.BearerAuth(client), **kw))


def via_httpx_async(url: str, client: Any, **kw: Any) -> list[ServerEvent]:
    async def run() -> list[ServerEvent]:
        async with httpx.AsyncClient(timeout=5) as http:
            auth = tw_httpx.BearerAuth(client)
            return [event async for event in tw_httpx.aiter_events(http, url, auth=auth, **kw)]

    return asyncio.run(run())


Driver = Callable[..., list[ServerEvent]]
DRIVERS: dict[str, Driver] = {
    "requests": via_requests,
    "httpx": via_httpx,
    "httpx-async": via_httpx_async,
}


# ---- the long scenarios (one token lifetime each, run side by side) -----------------------------


def sse_closed_at_expiry() -> dict[str, Any]:
    """A raw client opens /events with a 10 s token and reads until the server ends it."""
    rec = Recorder(total=10_000, interval=0.5, grace=GRACE)
    with stack(rec) as (idp, url, _):
        token = idp.mint(expires_in=LIFETIME)
        exp = claims_of(token)["exp"]
        events: list[ServerEvent] = []
        parser = EventParser()
        with httpx.Client(timeout=5) as http:
            headers = {"Authorization": f"Bearer {token}"}
            with http.stream("GET", url + "/events", headers=headers) as response:
                status = response.status_code
                for chunk in response.iter_bytes():
                    events.extend(parser.feed(chunk))
                    if time.time() > exp + 20:  # bounded: a server that never ends fails
                        break
        return {"exp": exp, "ended": time.time(), "events": events, "status": status}


def websocket_closed_at_expiry() -> dict[str, Any]:
    rec = Recorder(grace=GRACE)
    with stack(rec) as (idp, url, _):
        token = idp.mint(expires_in=LIFETIME)
        exp = claims_of(token)["exp"]
        ws_url = url.replace("http://", "ws://") + "/ws"
        with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as sock:
            sock.send("hello")
            echoed = sock.recv(timeout=5)
            closed: ConnectionClosed | None = None
            while closed is None and time.time() < exp + 20:
                try:
                    sock.recv(timeout=1)
                except TimeoutError:
                    continue
                except ConnectionClosed as exc:
                    closed = exc
        ended = time.time()
        assert closed is not None and closed.rcvd is not None, "the server never closed"
        return {
            "exp": exp,
            "ended": ended,
            "echoed": echoed,
            "code": closed.rcvd.code,
            "reason": closed.rcvd.reason,
            "server_ends": list(rec.ws_ends),
        }


def client_carries_on(driver: Driver) -> dict[str, Any]:
    """A client helper reads 60 numbered events (15 s) over a 10 s token: the server ends the
    first open at its expiry, the helper refreshes and resumes."""
    rec = Recorder(total=60, interval=0.25, grace=GRACE)
    with stack(rec) as (idp, url, client):
        events = driver(url + "/events", client)
        return {"events": events, "token_hits": idp.hits["token"], "opens": list(rec.opens)}


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "sse": sse_closed_at_expiry,
    "websocket": websocket_closed_at_expiry,
    **{
        f"carry-on-{name}": lambda d=driver: client_carries_on(d)
        for name, driver in DRIVERS.items()
    },
}


@pytest.fixture(scope="module")
def scenarios() -> Iterator[dict[str, Future[dict[str, Any]]]]:
    with ThreadPoolExecutor(max_workers=len(SCENARIOS), thread_name_prefix="scenario") as pool:
        futures = {name: pool.submit(run) for name, run in SCENARIOS.items()}
        yield futures


def test_the_server_ends_an_sse_stream_within_grace_of_its_tokens_expiry(
    scenarios: dict[str, Future[dict[str, Any]]],
) -> None:
    seen = scenarios["sse"].result(timeout=SCENARIO_TIMEOUT)
    assert seen["status"] == 200
    *ordinary, last = seen["events"]
    assert last.event == TOKEN_EXPIRED_EVENT and last.data == "expired"
    assert ordinary and all(e.event == "message" for e in ordinary)
    assert [e.id for e in ordinary] == [str(n) for n in range(1, len(ordinary) + 1)]
    # Not before exp + grace (the watch re-reads the clock), and not much after.
    assert seen["exp"] + GRACE <= seen["ended"] <= seen["exp"] + GRACE + SLACK


def test_the_server_closes_a_websocket_with_4401_at_expiry(
    scenarios: dict[str, Future[dict[str, Any]]],
) -> None:
    seen = scenarios["websocket"].result(timeout=SCENARIO_TIMEOUT)
    assert seen["echoed"] == "hello"
    assert (seen["code"], seen["reason"]) == (WS_TOKEN_EXPIRED, "expired")
    assert seen["exp"] + GRACE <= seen["ended"] <= seen["exp"] + GRACE + SLACK
    assert [reason for reason, _ in seen["server_ends"]] == ["expired"]


@pytest.mark.parametrize("name", list(DRIVERS))
def test_the_client_refreshes_and_resumes_without_losing_an_event(
    scenarios: dict[str, Future[dict[str, Any]]], name: str
) -> None:
    seen = scenarios[f"carry-on-{name}"].result(timeout=SCENARIO_TIMEOUT)
    events = seen["events"]
    assert [e.id for e in events] == [str(n) for n in range(1, 61)]
    assert [e.data for e in events] == [f"event {n}" for n in range(1, 61)]
    assert all(e.event == "message" for e in events)  # the control event is not handed out
    (first_id, first_token), (resumed_from, second_token) = seen["opens"]
    assert first_id == ""
    # The reopen resumed exactly after the last event delivered, with a new token.
    assert 1 <= int(resumed_from) < 60
    assert first_token != second_token
    assert seen["token_hits"] == 2


# ---- short ones ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DRIVERS))
def test_a_401_at_open_refreshes_the_token_and_reopens(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Two 401s: the BearerAuth hook's own retry gets the second; the helper drops that token
    # too and opens a third time.
    rec = Recorder(total=5, interval=0.01, refusals=2)
    with stack(rec, token_lifetime=300) as (idp, url, client):
        events = DRIVERS[name](url + "/refuse-first", client, backoff=0.01)
        hits = idp.hits["token"]
    assert [e.id for e in events] == ["1", "2", "3", "4", "5"]
    assert rec.refused == 2
    assert hits == 3
    assert len(set(rec.seen)) == 3  # three different tokens reached the server
    for token in rec.seen:
        assert token not in caplog.text
        assert token.split(".")[2] not in caplog.text
    assert "reopening" in caplog.text


@pytest.mark.parametrize("name", list(DRIVERS))
def test_a_server_that_keeps_failing_ends_in_a_typed_error(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rec = Recorder()
    with (
        stack(rec, token_lifetime=300) as (_, url, client),
        pytest.raises(tw.StreamError) as caught,
    ):
        DRIVERS[name](url + "/failing", client, attempts=3, backoff=0.01)
    assert (caught.value.attempts, caught.value.status) == (3, 503)
    assert rec.failing_hits == 3
    assert "3 times" in str(caught.value)
    assert "Bearer" not in caplog.text


@pytest.mark.parametrize("name", list(DRIVERS))
def test_a_refusal_no_retry_can_mend_raises_at_once(name: str) -> None:
    rec = Recorder()
    with stack(rec, token_lifetime=300) as (idp, url, client):
        with pytest.raises(tw.StreamError) as caught:
            DRIVERS[name](url + "/nowhere", client, attempts=3, backoff=0.01)
        assert idp.hits["token"] == 1
    assert (caught.value.attempts, caught.value.status) == (1, 404)


def test_a_revocation_seen_on_a_recheck_ends_the_stream() -> None:
    rec = Recorder(total=10_000, interval=0.05, revocable=True, recheck_every=0.2)
    with stack(rec) as (idp, url, _):
        token = idp.mint(expires_in=300)
        events: list[ServerEvent] = []
        parser = EventParser()
        with httpx.Client(timeout=5) as http:
            headers = {"Authorization": f"Bearer {token}"}
            with http.stream("GET", url + "/events", headers=headers) as response:
                for chunk in response.iter_bytes():
                    events.extend(parser.feed(chunk))
                    if len(events) == 3:
                        with rec.lock:
                            rec.revoked.add(token)
                    assert len(events) < 1000, "the revoked stream went on"
    assert events[-1] == ServerEvent(data="revoked", event=TOKEN_EXPIRED_EVENT, id=events[-2].id)
    assert all(e.event == "message" for e in events[:-1])


def test_the_default_recheck_ends_the_stream_of_a_user_taken_off_the_allowlist(
    tmp_path: Path,
) -> None:
    # The default re-verification is the Authenticator's own (verifier and allowlist): a user
    # removed from the allowlist file while streaming is cut off at the next recheck.
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text("alice@example.org\n")
    rec = Recorder(total=10_000, interval=0.05, recheck_every=0.2)
    with stack(rec, allowlist=str(allowlist)) as (idp, url, _):
        token = idp.mint(expires_in=300, email="alice@example.org")
        events: list[ServerEvent] = []
        parser = EventParser()
        with httpx.Client(timeout=5) as http:
            headers = {"Authorization": f"Bearer {token}"}
            with http.stream("GET", url + "/events", headers=headers) as response:
                assert response.status_code == 200
                for chunk in response.iter_bytes():
                    events.extend(parser.feed(chunk))
                    if len(events) == 3:
                        replacement = tmp_path / "next.txt"
                        replacement.write_text("bob@example.org\n")
                        os.replace(replacement, allowlist)
                    assert len(events) < 1000, "the stream of a user no longer allowed went on"
    assert events[-1].event == TOKEN_EXPIRED_EVENT
    assert events[-1].data == "not_allowlisted"
    assert all(e.event == "message" for e in events[:-1])


def test_a_client_that_goes_away_ends_the_source() -> None:
    rec = Recorder(total=10_000, interval=0.05)
    with stack(rec) as (idp, url, _):
        headers = {"Authorization": f"Bearer {idp.mint(expires_in=300)}"}
        parser = EventParser()
        with (
            httpx.Client(timeout=5) as http,
            http.stream("GET", url + "/events", headers=headers) as response,
        ):
            for chunk in response.iter_bytes():
                if list(parser.feed(chunk)):
                    break
        assert rec.source_closed.wait(timeout=10), "the source outlived its client"
        assert rec.sources_closed == 1


def test_settings_are_checked() -> None:
    from tokenward.fastapi import TokenWatch

    class Holder:
        claims: ClassVar[dict[str, int]] = {"exp": 1}
        token = "t"

    for bad in ({"grace": -1}, {"grace": float("nan")}, {"recheck_every": 0}):
        with pytest.raises(ValueError):
            TokenWatch(Holder(), recheck=lambda _: asyncio.sleep(0), **bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        TokenWatch(Holder())  # rechecks without an authenticator or a hook
    with pytest.raises(TypeError), requests.Session() as session:
        next(tw_requests.iter_events(session, "http://127.0.0.1:9/x"))  # no BearerAuth
    with pytest.raises(ValueError), requests.Session() as session:
        next(
            tw_requests.iter_events(
                session, "http://127.0.0.1:9/x", auth=tw_requests.BearerAuth(Holder()), attempts=0
            )
        )  # type: ignore[arg-type]
