"""Token requests of many worker processes, with and without the shared cache (issue 18, 4).

    python benches/python/shared_token.py [--workers 8] [--rounds 3]

Each round starts `--workers` fresh processes (the venv's Python), each with one TokenClient,
released together by a barrier; a round is one token lifetime (every process starts with no
token, as after a deploy or an expiry). Prints the DevIdP's token requests and the wall time of
a round, without and with `shared_cache` on a throw-away redis-server (Debian's). Nothing here
fails on a figure.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tokenward.testing import DevIdP

WORKER = r"""
import socket, sys
import tokenward as tw
url, shared, port = sys.argv[1], sys.argv[2] or None, int(sys.argv[3])
client = tw.TokenClient(url, client_id="bench", client_secret="s", shared_cache=shared)
with socket.create_connection(("127.0.0.1", port)) as sock:
    sock.recv(2)
client.get_token()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def round_of(idp: DevIdP, workers: int, shared: str) -> float:
    barrier = socket.socket()
    barrier.bind(("127.0.0.1", 0))
    barrier.listen(workers)
    port = barrier.getsockname()[1]
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, idp.token_url, shared, str(port)])
        for _ in range(workers)
    ]
    waiting = [barrier.accept()[0] for _ in range(workers)]
    start = time.perf_counter()
    for conn in waiting:
        conn.sendall(b"go")
        conn.close()
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - start
    barrier.close()
    assert codes == [0] * workers, codes
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found (make redis-server)")
    os.environ["TOKENWARD_SHARED_CACHE_KEY"] = base64.b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory() as workdir:
        redis_port = free_port()
        redis = subprocess.Popen(
            [
                binary,
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
                "--logfile",
                str(Path(workdir) / "log"),
            ],
        )
        try:
            time.sleep(0.5)  # a benchmark, not a test: a start-up pause is fine here
            for label, url in [
                ("no shared cache", ""),
                ("shared_cache", f"redis://127.0.0.1:{redis_port}/0"),
            ]:
                with DevIdP() as idp:
                    idp.add_client("bench", secret="s", token_lifetime=300)
                    times = []
                    for _ in range(args.rounds):
                        if url:
                            subprocess.run(
                                ["redis-cli", "-p", str(redis_port), "FLUSHALL"],
                                check=True,
                                capture_output=True,
                            )
                        times.append(round_of(idp, args.workers, url))
                    print(
                        f"{label}: {args.workers} workers x {args.rounds} rounds -> "
                        f"{idp.hits['token']} token requests; a round took "
                        f"{min(times) * 1000:.0f}-{max(times) * 1000:.0f} ms"
                    )
        finally:
            redis.kill()
            redis.wait()


if __name__ == "__main__":
    main()
