"""Fork safety of TokenClient: a child forked after the parent used the client (runtime
started, token cached, connection pooled) can use the cached token and fetch a new one."""

from __future__ import annotations

import json
import os
import sys

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
