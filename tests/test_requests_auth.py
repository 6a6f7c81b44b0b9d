"""tokenward.requests.BearerAuth against a protected resource that verifies DevIdP tokens."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest
import requests
import tokenward as tw
from _protected_server import Resource, protected_resource
from tokenward.requests import BearerAuth
from tokenward.testing import DevIdP

SECRET = "hook-secret-51d0"


@pytest.fixture
def client(dev_idp: DevIdP) -> tw.TokenClient:
    dev_idp.add_client("agent", secret=SECRET, token_lifetime=300)
    return tw.TokenClient(dev_idp.token_url, client_id="agent", client_secret=SECRET, timeout=2)


@pytest.fixture
def resource(verifier: tw.Verifier) -> Iterator[Resource]:
    with protected_resource(verifier) as resource:
        yield resource


def test_adds_the_bearer_token(client: tw.TokenClient, resource: Resource, dev_idp: DevIdP) -> None:
    auth = BearerAuth(client)
    with requests.Session() as session:
        session.auth = auth
        response = session.get(resource.url, timeout=10)
    assert response.status_code == 200
    assert response.json()["azp"] == "agent"
    bare = requests.get(resource.url, auth=auth, timeout=10)
    assert bare.status_code == 200
    assert [s.token for s in resource.seen] == [client.get_token()] * 2
    assert dev_idp.hits["token"] == 1


def test_a_401_is_retried_once_with_a_fresh_token(
    client: tw.TokenClient, resource: Resource, dev_idp: DevIdP
) -> None:
    old = client.get_token()
    resource.revoked.add(old)
    response = requests.post(resource.url, data=b"payload", auth=BearerAuth(client), timeout=10)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert resource.statuses() == [401, 200]
    assert [s.body for s in resource.seen] == [b"payload", b"payload"]
    assert resource.seen[1].token == client.get_token() != old
    assert dev_idp.hits["token"] == 2


def test_a_persistent_401_is_returned_after_one_retry(
    client: tw.TokenClient, resource: Resource, dev_idp: DevIdP
) -> None:
    resource.always_401 = True
    with requests.Session() as session:
        session.auth = BearerAuth(client)
        response = session.get(resource.url, timeout=10)
    assert response.status_code == 401
    assert resource.statuses() == [401, 401], "one retry, never a loop"
    assert dev_idp.hits["token"] == 2


def test_stream_true(client: tw.TokenClient, resource: Resource) -> None:
    resource.revoked.add(client.get_token())
    with requests.get(resource.url, auth=BearerAuth(client), stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert b"agent" in b"".join(response.iter_content(16))
    assert resource.statuses() == [401, 200]


def test_a_seekable_file_body_is_replayed(client: tw.TokenClient, resource: Resource) -> None:
    resource.revoked.add(client.get_token())
    body = io.BytesIO(b"xxfile-content")
    body.seek(2)
    response = requests.put(resource.url, data=body, auth=BearerAuth(client), timeout=10)
    assert response.status_code == 200
    assert [s.body for s in resource.seen] == [b"file-content", b"file-content"]


def test_a_generator_body_gets_the_401_back(
    client: tw.TokenClient, resource: Resource, dev_idp: DevIdP
) -> None:
    old = client.get_token()
    resource.revoked.add(old)

    def chunks() -> Iterator[bytes]:
        yield b"one-"
        yield b"shot"

    response = requests.post(resource.url, data=chunks(), auth=BearerAuth(client), timeout=10)
    assert response.status_code == 401
    assert resource.statuses() == [401]
    assert resource.seen[0].body == b"one-shot"
    assert client.get_token() == old, "nothing was retried, so nothing was invalidated"
    assert dev_idp.hits["token"] == 1


def test_a_burst_of_20_concurrent_401s_causes_one_refresh(
    client: tw.TokenClient, resource: Resource, dev_idp: DevIdP
) -> None:
    old = client.get_token()
    resource.revoked.add(old)
    resource.hold_401s(20)  # all 20 are in flight with the old token before any 401 returns
    auth = BearerAuth(client)
    start = threading.Barrier(20)
    statuses: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        start.wait()
        with requests.Session() as session:
            status = session.get(resource.url, auth=auth, timeout=20).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert statuses == [200] * 20
    assert sorted(resource.statuses()) == [200] * 20 + [401] * 20
    assert {s.token for s in resource.seen if s.status == 401} == {old}
    assert dev_idp.hits["token"] == 2, "one refresh for the whole burst"
