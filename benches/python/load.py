"""Request level: the FastAPI app of app.py under uvicorn (one worker) on 127.0.0.1, driven by
wrk (Debian's `wrk`) when it is installed, else by an async httpx driver. Every run is bounded
in time; only loopback is ever addressed."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from fixtures import AZP, REALM, Realm

HERE = Path(__file__).resolve().parent
MODES: tuple[str, ...] = (
    "none",
    "noop-dependency",
    "pyjwt",
    "tokenward",
    "tokenward-fastapi",
    "tokenward-minimal",
    "tokenward-middleware",
)
CONNECTIONS = 32
#: The mode the FastAPI target is judged on: tokenward's app-wide form.
PROTECTED = "tokenward-middleware"
SERVER_CPU, DRIVER_CPU = 0, 1


def _pinned(command: list[str], cpu: int) -> list[str]:
    """`command` pinned to one CPU when the machine has two or more and `taskset` is there:
    the server on one core and the load generator on the other, so the scheduler does not move
    them onto each other's core between runs (one of the larger sources of run-to-run noise)."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *command]
    return command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One uvicorn process serving app.py in one mode."""

    def __init__(self, mode: str, realm: Realm) -> None:
        self.mode = mode
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = realm.issuer.rsplit("/realms/", 1)[0]
        env = dict(os.environ, KEYCLOAK_URL=base, KEYCLOAK_REALM=REALM, KEYCLOAK_ALLOWED_AZP=AZP)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            _pinned([sys.executable, str(HERE / "app.py"), mode, str(self.port)], SERVER_CPU),
            env=env,
            cwd=HERE,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the {mode} server did not start")
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, token: str | None, seconds: float) -> dict[str, Any]:
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency"]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(
        _pinned([*command, url], DRIVER_CPU),
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    result: dict[str, Any] = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "90", "99"):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.MULTILINE)
        result[f"p{pct}_ms"] = _ms(match.group(1)) if match else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    result["socket_errors"] = errors.group(1) if errors else ""
    return result


def httpx_driver(url: str, token: str | None, seconds: float) -> dict[str, Any]:
    """The fallback load generator: CONNECTIONS async workers on one httpx client."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    failures = 0

    async def worker(client: httpx.AsyncClient, deadline: float) -> None:
        nonlocal failures
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            response = await client.get(url, headers=headers)
            latencies.append((time.perf_counter() - start) * 1e3)
            failures += response.status_code != 200

    async def drive() -> float:
        limits = httpx.Limits(max_connections=CONNECTIONS)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            start = time.perf_counter()
            deadline = start + seconds
            await asyncio.gather(*(worker(client, deadline) for _ in range(CONNECTIONS)))
            return time.perf_counter() - start

    elapsed = asyncio.run(drive())
    latencies.sort()

    def pick(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "non_2xx": failures,
        "socket_errors": "",
    }


#: The unprotected app driven without the token: what receiving a 1.2 KB header costs by itself.
NO_HEADER = "none-without-token"


def run_fastapi(realm: Realm, repeats: int, seconds: float) -> dict[str, Any]:
    """Requests per second and latency per mode; the modes' runs interleaved `repeats` times.
    Every mode gets the same requests, token included (the unprotected app ignores it), so the
    comparison isolates what the protection does; one more row drives the unprotected app
    without the token."""
    driver_name = "wrk" if shutil.which("wrk") else "httpx"
    driver = wrk if driver_name == "wrk" else httpx_driver
    token = realm.tokens["RS256"].token
    servers: dict[str, Server] = {}
    # The target's pair first and side by side: each repeat's ratio is taken within it.
    order = ["none", PROTECTED, *(m for m in MODES if m not in ("none", PROTECTED))]
    plan = [(mode, mode, token) for mode in order]
    plan.insert(2, (NO_HEADER, "none", None))
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in plan}
    try:
        for mode in MODES:
            servers[mode] = Server(mode, realm)
        for _, mode, sent in plan:  # warm-up: imports, JWKS fetch, caches
            driver(f"{servers[mode].url}/items", sent, 1)
        for repeat in range(repeats):
            # The target's pair runs back to back, in alternating order, so a drift of the
            # machine's speed within a repeat favours neither.
            pair = plan[:2] if repeat % 2 == 0 else plan[1::-1]
            for label, mode, sent in pair + plan[2:]:
                result = driver(f"{servers[mode].url}/items", sent, seconds)
                if result["non_2xx"]:
                    raise RuntimeError(f"{label}: {result['non_2xx']} requests failed")
                runs[label].append(result)
    finally:
        for server in servers.values():
            server.proc.terminate()
        for server in servers.values():
            server.close()
    rows = []
    for label, _, _ in plan:
        medians = {
            k: statistics.median(r[k] for r in runs[label])
            for k in ("rps", "p50_ms", "p90_ms", "p99_ms")
        }
        # Paired with the unprotected run of the same repeat, so slow spells of a shared
        # machine cancel out.
        of_none = [r["rps"] / n["rps"] for r, n in zip(runs[label], runs["none"], strict=True)]
        rows.append(
            {
                "mode": label,
                **medians,
                "of_none": statistics.median(of_none),
                "of_none_samples": of_none,
                "rps_samples": [r["rps"] for r in runs[label]],
            }
        )
    rows.sort(key=lambda r: MODES.index(r["mode"]) if r["mode"] in MODES else 0.5)
    return {
        "driver": driver_name,
        "connections": CONNECTIONS,
        "seconds": seconds,
        "repeats": repeats,
        "rows": rows,
    }
