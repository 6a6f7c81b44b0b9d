"""tokenward against the incumbents, in one run (issue 6): `make bench` (full) or
`make bench-smoke` (short, keeps the benches working; numbers from it mean little).

    python benches/python/run.py [--smoke] [--out DIR] [--only verify,threads,asgi,fastapi,client]

Prints a markdown table and writes DIR/latest.md, latest.json and latest.png. Benchmarks are
not tests: nothing here fails on a slow figure; a miss is reported as such.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SECTIONS = ("verify", "threads", "asgi", "fastapi", "client")


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _versions() -> dict[str, str]:
    out = {}
    for dist in (
        "tokenward",
        "PyJWT",
        "cryptography",
        "joserfc",
        "requests-auth",
        "Authlib",
        "fastapi",
        "uvicorn",
    ):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def _check_build(smoke: bool) -> str:
    """Which tokenward is measured: a full run insists on the release wheel of .venv-bench."""
    import tokenward._native as native

    where = Path(native.__file__).resolve()
    in_source = (Path(__file__).resolve().parents[2] / "python") in where.parents
    if in_source and not smoke:
        sys.exit(
            f"tokenward is imported from the source tree ({where}): that is `make dev`'s debug "
            "build. Run `make bench`, which installs a release wheel into .venv-bench."
        )
    return "debug (source tree)" if in_source else "release wheel"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a short run (CI)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--only", default=",".join(SECTIONS))
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    build = _check_build(args.smoke)

    import warnings

    # joserfc warns that "EdDSA" is deprecated in favour of "Ed25519" (RFC 9864); the tokens
    # use the name Keycloak writes.
    warnings.filterwarnings("ignore", message=".*EdDSA is deprecated.*")

    from asgi import run_asgi
    from client import run_client
    from fixtures import Realm
    from load import run_fastapi
    from micro import run_async_cached, run_threads, run_verify
    from report import write

    if args.smoke:
        rounds, batch, thread_repeats, thread_seconds = 3, 0.01, 2, 0.05
        asgi_rounds, asgi_batch, fastapi_repeats, fastapi_seconds = 2, 200, 1, 1.0
    else:
        rounds, batch, thread_repeats, thread_seconds = 15, 0.1, 11, 0.5
        asgi_rounds, asgi_batch, fastapi_repeats, fastapi_seconds = 9, 3000, 12, 2.0

    results: dict[str, Any] = {
        "meta": {
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "smoke": args.smoke,
            "cpu": _cpu(),
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "versions": _versions(),
            "tokenward_build": build,
            "load_before": _load(),
        }
    }
    started = time.perf_counter()
    realm = Realm()
    try:
        if "verify" in only:
            print("verify ...", flush=True)
            results["verify"] = run_verify(realm, rounds, batch) + run_async_cached(
                realm, rounds, batch
            )
        if "threads" in only:
            print("threads ...", flush=True)
            results["threads"] = run_threads(realm, thread_repeats, thread_seconds)
        if "asgi" in only:
            print("FastAPI in-process ...", flush=True)
            results["asgi"] = run_asgi(realm, asgi_rounds, asgi_batch)
        if "fastapi" in only:
            print("FastAPI under uvicorn ...", flush=True)
            results["fastapi"] = run_fastapi(realm, fastapi_repeats, fastapi_seconds)
        if "client" in only:
            print("client hooks ...", flush=True)
            results["client"] = run_client(realm, rounds, batch)
    finally:
        realm.close()
    results["meta"]["load_after"] = _load()
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    text = write(results, args.out)
    print()
    print(text)
    print(f"written to {args.out}/latest.md, latest.json, latest.png")


if __name__ == "__main__":
    main()
