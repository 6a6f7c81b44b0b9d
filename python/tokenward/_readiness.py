"""Warm start and readiness for FastAPI (re-exported by `tokenward.fastapi`).

    auth = Authenticator(exempt_paths={"/ready"})
    app = FastAPI(lifespan=warm_lifespan(auth), dependencies=[Depends(auth.app_dependency)])
    app.include_router(readiness_router(auth))      # GET /ready: 503 until keys are held

The lifespan fetches the key set (and a token, for a `TokenClient`) before the app takes
traffic. When that fails (the IdP is down at start-up) the app starts anyway, so its liveness
probe passes, and a background task keeps trying with a growing pause until it succeeds; the
readiness route answers 503 meanwhile. `required=True` makes a failed first attempt fail the
start-up instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from fastapi import APIRouter
from starlette.responses import JSONResponse

from .errors import TokenwardError

if TYPE_CHECKING:
    from .fastapi import Authenticator
    from .token_client import TokenClient
    from .verifier import Verifier

logger = logging.getLogger("tokenward.fastapi")

#: What can be warmed and probed: a verifier, a token client, or an authenticator (its
#: verifier, made on first use).
Warmable: TypeAlias = "Verifier | TokenClient | Authenticator"

#: The pause between background attempts: doubles from the first to the last.
RETRY_FIRST_SECONDS = 0.25
RETRY_MAX_SECONDS = 10.0

Lifespan: TypeAlias = Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]


class _Probed(Protocol):
    def health(self) -> Mapping[str, Any]: ...
    async def warm_async(self) -> None: ...


def _probed(target: Warmable) -> _Probed:
    # An Authenticator holds its verifier lazily (making it may raise ConfigError).
    if hasattr(target, "health"):
        return target  # type: ignore[return-value]
    return target.verifier  # type: ignore[return-value]


def _health(target: Warmable) -> dict[str, Any]:
    try:
        return dict(_probed(target).health())
    except TokenwardError as exc:
        # An authenticator whose verifier cannot be made (no configuration): never ready.
        return {"ready": False, "last_error": str(exc)}


def health_of(*targets: Warmable) -> dict[str, Any]:
    """The `health()` of one target, or for several `{"ready": all ready, "components": [...]}`."""
    if not targets:
        raise TypeError("name at least one Verifier, TokenClient or Authenticator")
    states = [_health(t) for t in targets]
    if len(states) == 1:
        return states[0]
    return {"ready": all(s["ready"] for s in states), "components": states}


async def _warm_until_ready(target: Warmable) -> None:
    pause = RETRY_FIRST_SECONDS
    while True:
        await asyncio.sleep(pause)
        try:
            await _probed(target).warm_async()
        except TokenwardError as exc:
            logger.debug("warm-up retry failed: %s", exc)
            pause = min(pause * 2, RETRY_MAX_SECONDS)
            continue
        logger.info("warm-up done after retrying: %r is ready", target)
        return


def warm_lifespan(
    *targets: Warmable, lifespan: Lifespan | None = None, required: bool = False
) -> Lifespan:
    """A FastAPI/Starlette `lifespan` that warms `targets` (`warm_async`) before the app takes
    traffic, then runs `lifespan` (the app's own, if any) inside it.

    A target that cannot be warmed is logged (WARNING) and retried in the background until it
    is ready (the task is cancelled at shutdown); with `required=True` the error is raised
    instead and the app does not start."""
    if not targets:
        raise TypeError("name at least one Verifier, TokenClient or Authenticator")

    @contextlib.asynccontextmanager
    async def warmed(app: Any) -> AsyncIterator[Any]:
        retries: list[asyncio.Task[None]] = []
        for target in targets:
            try:
                await _probed(target).warm_async()
            except TokenwardError as exc:
                if required:
                    raise
                logger.warning(
                    "warm-up failed, starting anyway and retrying in the background "
                    "(readiness answers 503 until it succeeds): %s",
                    exc,
                )
                retries.append(asyncio.create_task(_warm_until_ready(target)))
        try:
            if lifespan is None:
                yield None
            else:
                async with lifespan(app) as state:
                    yield state
        finally:
            for task in retries:
                task.cancel()
            for task in retries:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return warmed


def readiness_endpoint(*targets: Warmable) -> Callable[[], Awaitable[JSONResponse]]:
    """An endpoint answering 200 with `health_of(*targets)` when all are ready, else 503 with
    the same body; it reads state only (no I/O), so a probe never waits on the IdP."""
    health_of(*targets)  # refuses an empty list now rather than on the first probe

    async def readiness() -> JSONResponse:
        body = health_of(*targets)
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    return readiness


def readiness_router(*targets: Warmable, path: str = "/ready") -> APIRouter:
    """A router with `GET path` (`readiness_endpoint`), for `app.include_router`. Put `path` in
    the authenticator's `exempt_paths` when the app requires a token app-wide."""
    router = APIRouter()
    router.add_api_route(
        path,
        readiness_endpoint(*targets),
        methods=["GET"],
        include_in_schema=False,
        summary="Readiness: 503 until the key set (and token) are held",
    )
    return router
