"""Fork safety: a process that has used a Verifier (runtime started, keys cached, connections
pooled) forks; the child verifies, fetches keys itself and sees a rotated key. Results travel to
the parent through a pipe or a queue, so a failure in the child fails the test here."""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import sys
from typing import Any

import pytest
import tokenward as tw
from _helpers import CHILD_TIMEOUT, MakeVerifier, header_of, read_child_report
from tokenward.testing import DevIdP

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork.*:DeprecationWarning"),
]



def _verify_all(v: tw.Verifier, tokens: dict[str, str]) -> dict[str, Any]:
    """What the child reports: the sub of each token, or the error it got."""
    report: dict[str, Any] = {}
    for name, token in tokens.items():
        try:
            report[name] = v.verify(token)["sub"]
        except tw.InvalidToken as exc:
            report[name] = f"InvalidToken:{exc.code}"
        except Exception as exc:  # noqa: BLE001 - reported to the parent as text
            report[name] = f"{type(exc).__name__}"
    return report


def _tokens_after_rotation(idp: DevIdP, v: tw.Verifier) -> dict[str, str]:
    """Use the verifier in the parent, rotate, and mint one token per case (before the fork:
    the child never touches the IdP object, whose locks may be held by server threads)."""
    assert v.verify(idp.mint(sub="parent"))["sub"] == "parent"
    assert idp.hits["jwks"] == 1
    old_kid = idp.current_kid
    new_kid = idp.rotate_keys()
    tokens = {"known": idp.mint(sub="known", kid=old_kid), "rotated": idp.mint(sub="rotated")}
    assert header_of(tokens["rotated"])["kid"] == new_kid
    return tokens


def test_os_fork_child_verifies_and_picks_up_a_rotated_key(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier()
    tokens = _tokens_after_rotation(dev_idp, v)
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running any pytest machinery
        code = 1
        try:
            os.close(read_fd)
            os.write(write_fd, json.dumps(_verify_all(v, tokens)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    report = read_child_report(read_fd, pid)
    assert report == {"known": "known", "rotated": "rotated"}
    assert dev_idp.hits["jwks"] == 2, "the child fetched the rotated key set itself"
    # The parent is unaffected, and fetches for itself.
    assert _verify_all(v, tokens) == report
    assert dev_idp.hits["jwks"] == 3


def _mp_child(v: tw.Verifier, tokens: dict[str, str], results: Any) -> None:
    results.put(_verify_all(v, tokens))


def test_multiprocessing_fork_child_verifies_and_picks_up_a_rotated_key(
    dev_idp: DevIdP, make_verifier: MakeVerifier
) -> None:
    v = make_verifier()
    tokens = _tokens_after_rotation(dev_idp, v)
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_mp_child, args=(v, tokens, results))
    child.start()
    try:
        report = results.get(timeout=CHILD_TIMEOUT)
    except queue.Empty:
        pytest.fail("the forked child reported nothing")
    finally:
        child.join(timeout=CHILD_TIMEOUT)
        if child.is_alive():
            child.kill()
            child.join()
    assert child.exitcode == 0
    assert report == {"known": "known", "rotated": "rotated"}
    assert dev_idp.hits["jwks"] == 2


def test_forked_children_in_a_row_each_work(dev_idp: DevIdP, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    assert v.verify(dev_idp.mint())["sub"] == "u1"
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    for i in range(3):
        tokens = {"t": dev_idp.mint(sub=f"child-{i}")}
        child = ctx.Process(target=_mp_child, args=(v, tokens, results))
        child.start()
        assert results.get(timeout=CHILD_TIMEOUT) == {"t": f"child-{i}"}
        child.join(timeout=CHILD_TIMEOUT)
        assert child.exitcode == 0
    assert v.verify(dev_idp.mint(sub="parent-again"))["sub"] == "parent-again"
