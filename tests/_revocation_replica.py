"""One replica for the shared-revocation tests: a separate process with its own Verifier on a
shared Redis, a FastAPI app served by uvicorn on loopback.

    python tests/_revocation_replica.py ISSUER REDIS_URL [--fork] [--logout-client CLIENT_ID]

Prints `READY <port> <pid>` once its socket listens (the pid of the serving process). With
`--fork` the verifier is made and warmed in this process, which then forks and the child
serves, as a pre-fork server's worker would. With `--logout-client` it also serves the
back-channel logout receiver for that client at POST /backchannel-logout.

    GET  /verify   (Authorization: Bearer <jwt>) -> 200 {"sub": ...} | 401 {"code": ...}
    POST /revoke?sid=..&sub=..                    -> 200
    GET  /health                                  -> 200 health()["revocations"]
"""

from __future__ import annotations

import argparse
import os
import socket
from typing import Any

import tokenward as tw
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from tokenward.fastapi import backchannel_logout_route


def app_for(verifier: tw.Verifier, logout_client: str | None) -> FastAPI:
    app = FastAPI()

    @app.get("/verify")
    async def verify(request: Request) -> JSONResponse:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            claims = await verifier.verify_async(token)
        except tw.InvalidToken as exc:
            return JSONResponse({"code": exc.code}, status_code=401)
        except tw.TokenwardError as exc:
            return JSONResponse({"error": type(exc).__name__}, status_code=503)
        return JSONResponse({"sub": claims.get("sub")})

    @app.post("/revoke")
    async def revoke(request: Request) -> dict[str, Any]:
        verifier.revoke(**dict(request.query_params))
        return {}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return dict(verifier.health()["revocations"])

    if logout_client is not None:
        app.include_router(backchannel_logout_route(verifier, client_id=logout_client))
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("issuer")
    parser.add_argument("redis_url")
    parser.add_argument("--fork", action="store_true")
    parser.add_argument("--logout-client")
    args = parser.parse_args()
    verifier = tw.Verifier(args.issuer, revocations=args.redis_url, http_timeout=5.0)
    verifier.warm()
    if args.fork:
        pid = os.fork()
        if pid:
            # The parent waits; the test stops both (it is told the child's pid).
            os.waitpid(pid, 0)
            return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"READY {sock.getsockname()[1]} {os.getpid()}", flush=True)
    config = uvicorn.Config(
        app_for(verifier, args.logout_client), log_level="warning", access_log=False
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
