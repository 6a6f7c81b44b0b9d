"""Fork safety of TokenClient: a child forked after the parent used the client (runtime
started, token cached, connection pooled) can use the cached token and fetch a new one."""

from __future__ import annotations

import json
import os
import sys
import threading

import pytest
import tokenward as tw
from _helpers import read_child_report
from tokenward.testing import DevIdP

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork.*:DeprecationWarning"),
]


def test_forked_child_uses_the_cache_and_fetches_for_itself(dev_idp: DevIdP) -> None:
    dev_idp.add_client("agent", secret="fork-secret")
    client = tw.TokenClient(
        dev_idp.token_url, client_id="agent", client_secret="fork-secret", timeout=2
    )
    parent_token = client.get_token()
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running any pytest machinery
        code = 1
        try:
            os.close(read_fd)
            cached = client.get_token()
            client.invalidate(cached)
            fresh = client.get_token()
            report = {"cached": cached, "fresh": fresh}
            os.write(write_fd, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    report = read_child_report(read_fd, pid)
    assert report["cached"] == parent_token
    assert report["fresh"] != parent_token
    assert dev_idp.hits["token"] == 2, "the child fetched its own token"
    assert client.get_token() == parent_token, "the parent's cache is its own"
    client.invalidate()
    assert client.get_token() not in (parent_token, report["fresh"])
    assert dev_idp.hits["token"] == 3


def test_a_child_forked_during_an_exchange_makes_its_own(dev_idp: DevIdP) -> None:
    """The parent's exchange is in flight at fork time: the child must not wait on it (that
    request never completes in the child) but exchange for itself."""
    dev_idp.add_client("svc-a", "fork-secret", token_exchange=True, audiences=["b"])
    dev_idp.add_client("b", "b-secret")
    client = tw.TokenClient(
        dev_idp.token_url, client_id="svc-a", client_secret="fork-secret", timeout=5
    )
    user = dev_idp.mint(sub="alice", aud="svc-a")
    client.get_token()  # the runtime and the connection pool exist before the fork
    dev_idp.set_fault("token", "slow")
    results: list[str] = []
    parent = threading.Thread(target=lambda: results.append(client.exchange(user, audience="b")))
    parent.start()
    assert dev_idp.in_flight.wait_for("token", 1)
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            os.write(write_fd, json.dumps({"token": client.exchange(user, audience="b")}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    arrived = dev_idp.in_flight.wait_for("token", 2)
    dev_idp.set_fault("token", None)
    report = read_child_report(read_fd, pid)
    parent.join(timeout=10)
    assert arrived, "the child sent its own exchange while the parent's was in flight"
    assert results and report["token"] != results[0]
