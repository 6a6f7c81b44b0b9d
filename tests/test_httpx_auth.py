"""tokenward.httpx.BearerAuth (sync and async flows) against a protected resource that verifies
DevIdP tokens."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import tokenward as tw
from _protected_server import Resource, protected_resource
from tokenward.httpx import BearerAuth
from tokenward.testing import DevIdP

SECRET = "hook-secret-9e4a"


@pytest.fixture
def client(dev_idp: DevIdP) -> tw.TokenClient:
    dev_idp.add_client("agent", secret=SECRET, token_lifetime=300)
    return tw.TokenClient(dev_idp.token_url, client_id="agent", client_secret=SECRET, timeout=2)


@pytest.fixture
def resource(verifier: tw.Verifier) -> Iterator[Resource]:
    with protected_resource(verifier) as resource:
        yield resource


def test_sync_adds_the_token_and_retries_a_401_once(
    client: tw.TokenClient, resource: Resource, dev_idp: DevIdP
) -> None:
    with httpx.Client(auth=BearerAuth(client), timeout=10) as http:
        assert http.get(resource.url).json()["azp"] == "agent"
        old = client.get_token()
        resource.revoked.add(old)
        response = http.post(resource.url, content=b"payload")
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert resource.statuses() == [200, 401, 200]
    assert [s.body for s in resource.seen[1:]] == [b"payload", b"payload"]
    assert resource.seen[2].token != old
    assert dev_idp.hits["token"] == 2


def test_sync_never_loops(client: tw.TokenClient, resource: Resource, dev_idp: DevIdP) -> None:
    resource.always_401 = True
    with httpx.Client(auth=BearerAuth(client), timeout=10) as http:
        assert http.get(resource.url).status_code == 401
    assert resource.statuses() == [401, 401]
    assert dev_idp.hits["token"] == 2


def test_sync_streamed_body_gets_the_401_back(
    client: tw.TokenClient, resource: Resource, dev_idp: DevIdP
) -> None:
    resource.revoked.add(client.get_token())

    def chunks() -> Iterator[bytes]:
        yield b"one-"
        yield b"shot"

    with httpx.Client(auth=BearerAuth(client), timeout=10) as http:
        response = http.post(resource.url, content=chunks())
    assert response.status_code == 401
    assert resource.statuses() == [401]
    assert dev_idp.hits["token"] == 1


def test_sync_streamed_response(client: tw.TokenClient, resource: Resource) -> None:
    resource.revoked.add(client.get_token())
    with (
        httpx.Client(auth=BearerAuth(client), timeout=10) as http,
        http.stream("GET", resource.url) as response,
    ):
        assert response.status_code == 200
        assert b"agent" in response.read()
    assert resource.statuses() == [401, 200]


async def test_async_adds_the_token_and_retries_a_401_once(
    client: tw.TokenClient, resource: Resource, dev_idp: DevIdP
) -> None:
    async with httpx.AsyncClient(auth=BearerAuth(client), timeout=10) as http:
        resource.revoked.add(await client.get_token_async())
        response = await http.put(resource.url, json={"a": 1})
        assert response.status_code == 200
        resource.always_401 = True
        assert (await http.get(resource.url)).status_code == 401
    assert resource.statuses() == [401, 200, 401, 401]
    assert [s.body for s in resource.seen[:2]] == [b'{"a":1}'] * 2
    assert dev_idp.hits["token"] == 3


async def test_async_streamed_body_gets_the_401_back(
    client: tw.TokenClient, resource: Resource
) -> None:
    resource.revoked.add(client.get_token())

    async def chunks() -> AsyncIterator[bytes]:
        yield b"one-"
        yield b"shot"

    async with httpx.AsyncClient(auth=BearerAuth(client), timeout=10) as http:
        response = await http.post(resource.url, content=chunks())
    assert response.status_code == 401
    assert resource.statuses() == [401]


async def test_async_burst_of_20_concurrent_401s_causes_one_refresh(
    client: tw.TokenClient, resource: Resource, dev_idp: DevIdP
) -> None:
    old = await client.get_token_async()
    resource.revoked.add(old)
    resource.hold_401s(20)
    async with httpx.AsyncClient(auth=BearerAuth(client), timeout=20) as http:
        responses = await asyncio.gather(*(http.get(resource.url) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert sorted(resource.statuses()) == [200] * 20 + [401] * 20
    assert dev_idp.hits["token"] == 2


def test_sync_burst_of_20_concurrent_401s_causes_one_refresh(
    client: tw.TokenClient, resource: Resource, dev_idp: DevIdP
) -> None:
    resource.revoked.add(client.get_token())
    resource.hold_401s(20)
    start = threading.Barrier(20)
    statuses: list[int] = []

    def call(http: httpx.Client) -> None:
        start.wait()
        statuses.append(http.get(resource.url).status_code)

    limits = httpx.Limits(max_connections=40)
    with httpx.Client(auth=BearerAuth(client), timeout=20, limits=limits) as http:
        threads = [threading.Thread(target=call, args=(http,)) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert statuses == [200] * 20
    assert dev_idp.hits["token"] == 2
