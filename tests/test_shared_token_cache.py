"""One token for all workers (issue 18, item 4): `TokenClient(shared_cache="redis://...")`.

Real worker processes (the venv's Python) share one real Redis and fetch from the DevIdP over
HTTP. They start behind a barrier so they race, and report a digest of their token, never the
token itself. `idp.hits["token"]` counts the token requests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import pytest
import tokenward as tw
from _helpers import read_child_report
from _redis import RedisServer
from tokenward.testing import DevIdP

SECRET = "shared-secret"
KEY = base64.b64encode(b"k" * 32).decode()
OTHER_KEY = base64.b64encode(b"o" * 32).decode()
WORKERS = 8
#: Seconds any one worker answer may take: a bound against a hang, not a speed check.
ANSWER_TIMEOUT = 60.0

#: A worker: waits at the barrier, runs each command read from stdin, answers a JSON line.
WORKER = r"""
import hashlib, json, socket, sys
import tokenward as tw

token_url, redis_url, barrier_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = tw.TokenClient(
    token_url, client_id="agent", client_secret="shared-secret", timeout=2,
    shared_cache=redis_url,
)

def barrier():
    with socket.create_connection(("127.0.0.1", barrier_port)) as sock:
        assert sock.recv(2) == b"go"

held = None
for line in sys.stdin:
    command = line.strip()
    barrier()
    if command == "invalidate":
        client.invalidate(held)
    held = client.get_token()
    report = {
        "digest": hashlib.sha256(held.encode()).hexdigest(),
        "shared_cache": client.health()["shared_cache"],
    }
    print(json.dumps(report), flush=True)
"""


class Barrier:
    """Lets `n` processes go at once: each connects and waits for b"go"."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(ANSWER_TIMEOUT)
        self.port: int = self.sock.getsockname()[1]

    def release(self, n: int) -> None:
        waiting = [self.sock.accept()[0] for _ in range(n)]
        for conn in waiting:
            conn.sendall(b"go")
            conn.close()

    def close(self) -> None:
        self.sock.close()


class Workers:
    """`n` long-lived worker processes, each with its own TokenClient on the shared cache."""

    def __init__(self, idp: DevIdP, redis: RedisServer, n: int, key: str = KEY) -> None:
        self.barrier = Barrier()
        env = {**os.environ, "TOKENWARD_SHARED_CACHE_KEY": key}
        args = [idp.token_url, redis.url, str(self.barrier.port)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(n)
        ]
        self.pool = ThreadPoolExecutor(max_workers=n)

    def run(self, command: str) -> list[dict[str, Any]]:
        """Every worker runs `command` ("get" or "invalidate") at once; their reports."""
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
        self.barrier.release(len(self.procs))
        futures = [self.pool.submit(_answer, proc.stdout) for proc in self.procs]
        return [json.loads(f.result(timeout=ANSWER_TIMEOUT)) for f in futures]

    def close(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=ANSWER_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.pool.shutdown()
        self.barrier.close()
        codes = [proc.returncode for proc in self.procs]
        assert codes == [0] * len(codes), f"a worker failed: {codes}"


def _answer(stream: IO[str] | None) -> str:
    assert stream is not None
    line = stream.readline()
    assert line, "a worker exited without answering"
    return line


def digests(reports: list[dict[str, Any]]) -> set[str]:
    return {r["digest"] for r in reports}


@pytest.fixture
def workers(dev_idp: DevIdP, redis_server: RedisServer) -> Iterator[Workers]:
    dev_idp.add_client("agent", secret=SECRET)
    pool = Workers(dev_idp, redis_server, WORKERS)
    try:
        yield pool
    finally:
        pool.close()


def raw_command(redis: RedisServer, *args: str) -> bytes:
    """One command over a plain socket (RESP), its whole raw answer."""
    request = f"*{len(args)}\r\n".encode()
    for arg in args:
        request += f"${len(arg.encode())}\r\n{arg}\r\n".encode()
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def entry_names(redis: RedisServer) -> list[str]:
    answer = raw_command(redis, "KEYS", "tokenward:token:*")
    return sorted(
        line.decode()
        for line in answer.split(b"\r\n")
        if line.startswith(b"tokenward:token:") and not line.endswith(b":lock")
    )


def client(idp: DevIdP, redis: RedisServer, **settings: Any) -> tw.TokenClient:
    settings.setdefault("client_id", "agent")
    return tw.TokenClient(
        idp.token_url, client_secret=SECRET, timeout=2, shared_cache=redis.url, **settings
    )


def test_eight_workers_make_one_token_request(workers: Workers, dev_idp: DevIdP) -> None:
    reports = workers.run("get")
    assert dev_idp.hits["token"] == 1
    assert len(digests(reports)) == 1, "every worker holds the one token"
    assert all(r["shared_cache"] == {"connected": True, "last_error": None} for r in reports)
    # Local hits from now on: no Redis round, no request.
    assert digests(workers.run("get")) == digests(reports)
    assert dev_idp.hits["token"] == 1


def test_a_burst_of_401s_for_the_shared_token_causes_one_request(
    workers: Workers, dev_idp: DevIdP
) -> None:
    first = digests(workers.run("get"))
    # Every worker is told the token is refused (a 401 each): whoever comes first replaces
    # it, and the others take the replacement instead of each requesting one.
    second = digests(workers.run("invalidate"))
    assert dev_idp.hits["token"] == 2
    assert len(second) == 1 and second != first


def test_redis_killed_mid_run_each_fetches_then_they_share_again(
    workers: Workers, dev_idp: DevIdP, redis_server: RedisServer
) -> None:
    shared = digests(workers.run("get"))
    assert dev_idp.hits["token"] == 1
    redis_server.stop()
    alone = workers.run("invalidate")
    assert dev_idp.hits["token"] == 1 + WORKERS, "each worker fetched for itself"
    assert len(digests(alone)) == WORKERS and not digests(alone) & shared
    for report in alone:
        assert report["shared_cache"]["connected"] is False
        assert "unreachable" in report["shared_cache"]["last_error"]
    redis_server.start()
    again = workers.run("invalidate")
    assert dev_idp.hits["token"] == 2 + WORKERS, f"one request for all once Redis is back: {again}"
    assert len(digests(again)) == 1
    assert all(r["shared_cache"] == {"connected": True, "last_error": None} for r in again)


def test_a_second_round_after_the_lifetime_makes_one_more_request(
    dev_idp: DevIdP, redis_server: RedisServer
) -> None:
    dev_idp.add_client("agent", secret=SECRET, token_lifetime=2)
    first = Workers(dev_idp, redis_server, WORKERS)
    try:
        round_one = digests(first.run("get"))
    finally:
        first.close()
    assert dev_idp.hits["token"] == 1 and len(round_one) == 1
    # The entry's Redis TTL is the token's expiry: wait for Redis to drop it.
    deadline = time.monotonic() + 30
    while entry_names(redis_server):
        assert time.monotonic() < deadline, "the entry outlived its token"
        time.sleep(0.05)
    second = Workers(dev_idp, redis_server, WORKERS)
    try:
        round_two = digests(second.run("get"))
    finally:
        second.close()
    assert dev_idp.hits["token"] == 2
    assert len(round_two) == 1 and round_two != round_one


def test_the_stored_token_is_encrypted(
    dev_idp: DevIdP, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev_idp.add_client("agent", secret=SECRET)
    monkeypatch.setenv("TOKENWARD_SHARED_CACHE_KEY", KEY)
    token = client(dev_idp, redis_server).get_token()
    names = entry_names(redis_server)
    assert len(names) == 1
    assert "agent" not in names[0], "the key name is a digest, not the client id"
    raw = raw_command(redis_server, "GET", names[0])
    assert len(raw) > 100, "an entry is there"
    for part in [token, *token.split(".")]:
        assert part.encode() not in raw
    assert SECRET.encode() not in raw
    # Another process (here another client) reads it back: no second request.
    assert client(dev_idp, redis_server).get_token() == token
    assert dev_idp.hits["token"] == 1


def test_an_entry_under_another_key_is_refetched_not_an_error(
    dev_idp: DevIdP, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev_idp.add_client("agent", secret=SECRET)
    monkeypatch.setenv("TOKENWARD_SHARED_CACHE_KEY", OTHER_KEY)
    theirs = client(dev_idp, redis_server).get_token()
    monkeypatch.setenv("TOKENWARD_SHARED_CACHE_KEY", KEY)
    ours = client(dev_idp, redis_server)
    token = ours.get_token()
    assert token != theirs and dev_idp.hits["token"] == 2
    health = ours.health()["shared_cache"]
    assert health["connected"] is True
    assert "does not decrypt" in (health["last_error"] or "")
    # It replaced the entry with one sealed under its own key, which the next process reads.
    assert client(dev_idp, redis_server).get_token() == token
    assert dev_idp.hits["token"] == 2


def test_moving_an_entry_to_another_key_name_does_not_serve_it(
    dev_idp: DevIdP, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry copied under another client's name fails its associated data: refetched."""
    dev_idp.add_client("agent", secret=SECRET)
    dev_idp.add_client("other-agent", secret=SECRET)
    monkeypatch.setenv("TOKENWARD_SHARED_CACHE_KEY", KEY)
    scoped = client(dev_idp, redis_server, client_id="other-agent")
    plain = client(dev_idp, redis_server)
    plain_token = plain.get_token()
    [plain_name] = entry_names(redis_server)
    scoped.get_token()
    [scoped_name] = [n for n in entry_names(redis_server) if n != plain_name]
    assert dev_idp.hits["token"] == 2
    # Copy the plain client's entry over the scoped one's.
    raw_command(redis_server, "COPY", plain_name, scoped_name, "REPLACE")
    fresh_scoped = client(dev_idp, redis_server, client_id="other-agent")
    assert fresh_scoped.get_token() != plain_token
    assert dev_idp.hits["token"] == 3
    health = fresh_scoped.health()["shared_cache"]
    assert "does not decrypt" in (health["last_error"] or "")


def test_a_forked_worker_gets_its_own_connection(
    dev_idp: DevIdP, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    dev_idp.add_client("agent", secret=SECRET)
    monkeypatch.setenv("TOKENWARD_SHARED_CACHE_KEY", KEY)
    parent = client(dev_idp, redis_server)
    first = parent.get_token()
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            parent.invalidate(first)
            fresh = parent.get_token()
            report = {
                "fresh": hashlib.sha256(fresh.encode()).hexdigest(),
                "shared_cache": parent.health()["shared_cache"],
            }
            os.write(write_fd, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    report = read_child_report(read_fd, pid)
    assert report["shared_cache"] == {"connected": True, "last_error": None}
    assert dev_idp.hits["token"] == 2, "the child replaced the refused token in Redis"
    assert parent.get_token() == first, "the parent's local copy is its own"
    parent.invalidate(first)
    assert hashlib.sha256(parent.get_token().encode()).hexdigest() == report["fresh"]
    assert dev_idp.hits["token"] == 2, "the parent took the child's token from Redis"


def test_bad_settings_are_config_errors(
    dev_idp: DevIdP, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKENWARD_SHARED_CACHE_KEY", raising=False)
    with pytest.raises(tw.ConfigError) as missing:
        client(dev_idp, redis_server)
    assert missing.value.setting == "TOKENWARD_SHARED_CACHE_KEY"
    for bad in ["short", base64.b64encode(b"x" * 16).decode(), "@@not base64@@" * 4]:
        monkeypatch.setenv("TOKENWARD_SHARED_CACHE_KEY", bad)
        with pytest.raises(tw.ConfigError) as wrong:
            client(dev_idp, redis_server)
        assert wrong.value.setting == "TOKENWARD_SHARED_CACHE_KEY"
        assert bad not in str(wrong.value)
    monkeypatch.setenv("TOKENWARD_SHARED_CACHE_KEY", KEY)
    for url in ["http://127.0.0.1:6379", "127.0.0.1:6379", "redis://:hunter2@[::1"]:
        with pytest.raises(tw.ConfigError) as bad_url:
            tw.TokenClient(
                dev_idp.token_url, client_id="agent", client_secret=SECRET, shared_cache=url
            )
        assert bad_url.value.setting == "shared_cache"
        assert "hunter2" not in str(bad_url.value)


def test_from_env_reads_the_shared_cache_url(
    dev_idp: DevIdP, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev_idp.add_client("agent", secret=SECRET)
    monkeypatch.setenv("KEYCLOAK_URL", dev_idp.base_url)
    monkeypatch.setenv("KEYCLOAK_REALM", dev_idp.realm)
    monkeypatch.setenv("KEYCLOAK_CLIENT_ID", "agent")
    monkeypatch.setenv("KEYCLOAK_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("TOKENWARD_SHARED_CACHE", redis_server.url)
    monkeypatch.setenv("TOKENWARD_SHARED_CACHE_KEY", KEY)
    shared = tw.TokenClient.from_env(timeout=2)
    assert shared.health()["shared_cache"] == {"connected": False, "last_error": None}
    token = shared.get_token()
    assert tw.TokenClient.from_env(timeout=2).get_token() == token
    assert dev_idp.hits["token"] == 1
    assert "shared_cache" not in tw.TokenClient.from_env(shared_cache=None).health()
    assert "hunter2" not in repr(shared)


def test_redis_down_from_the_start_never_fails_get_token(
    dev_idp: DevIdP,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dev_idp.add_client("agent", secret=SECRET)
    monkeypatch.setenv("TOKENWARD_SHARED_CACHE_KEY", KEY)
    caplog.set_level(logging.WARNING, logger="tokenward")
    redis_server.stop()
    c = client(dev_idp, redis_server)
    assert c.get_token()
    for _ in range(3):
        c.invalidate()
        assert c.get_token()
    assert dev_idp.hits["token"] == 4
    warnings = [r for r in caplog.records if "shared token cache" in r.getMessage()]
    assert len(warnings) == 1, "one warning per interval, not one per fetch"
    assert warnings[0].name == "tokenward.token.shared"
    health = c.health()["shared_cache"]
    assert health["connected"] is False
    assert str(redis_server.port) not in (health["last_error"] or "")
    redis_server.start()
    c.invalidate()
    token = c.get_token()
    assert c.health()["shared_cache"] == {"connected": True, "last_error": None}
    assert client(dev_idp, redis_server).get_token() == token
    assert dev_idp.hits["token"] == 5


def test_the_async_path_shares_too(
    dev_idp: DevIdP, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev_idp.add_client("agent", secret=SECRET)
    monkeypatch.setenv("TOKENWARD_SHARED_CACHE_KEY", KEY)
    token = client(dev_idp, redis_server).get_token()

    async def main() -> list[str]:
        clients = [client(dev_idp, redis_server) for _ in range(4)]
        return await asyncio.gather(*(c.get_token_async() for c in clients))

    assert asyncio.run(main()) == [token] * 4
    assert dev_idp.hits["token"] == 1


def test_a_dead_holders_lock_expires_and_a_waiter_fetches(
    dev_idp: DevIdP, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that took the lock and died never releases it: its expiry does."""
    dev_idp.add_client("agent", secret=SECRET)
    monkeypatch.setenv("TOKENWARD_SHARED_CACHE_KEY", KEY)
    first = client(dev_idp, redis_server).get_token()
    [name] = entry_names(redis_server)
    raw_command(redis_server, "DEL", name)
    assert (
        raw_command(redis_server, "SET", f"{name}:lock", "dead-holder", "PX", "1000") == b"+OK\r\n"
    )
    token = client(dev_idp, redis_server).get_token()
    assert token != first and dev_idp.hits["token"] == 2
    assert entry_names(redis_server) == [name], "stored for the others"
    assert raw_command(redis_server, "EXISTS", f"{name}:lock") == b":0\r\n", "released"
